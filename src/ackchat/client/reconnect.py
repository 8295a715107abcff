"""When to try again after a lost connection: the backoff schedule, without I/O or clocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

FIRST_DELAY = 0.5
GROWTH = 2.0
MAX_DELAY = 10.0


def backoff_delays(
    total: float | None,
    random: Callable[[], float],
    first: float = FIRST_DELAY,
    cap: float = MAX_DELAY,
) -> Iterator[float]:
    """Seconds to wait before each attempt: doubling from ``first`` up to ``cap``.

    Each delay is jittered to between half and all of its step (``random`` gives 0 to 1),
    so clients cut off together do not come back together; the delays stop before their
    sum would pass ``total`` (the server's resume grace, after which resuming is futile),
    and never if ``total`` is None.
    """
    spent = 0.0
    step = first
    while True:
        delay = step * (0.5 + 0.5 * random())
        if total is not None and spent + delay > total:
            return
        spent += delay
        yield delay
        step = min(cap, step * GROWTH)
