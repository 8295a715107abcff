"""What a server counts about its own work, for ``/metrics`` and the admin API. No I/O.

Sessions count their traffic in attributes of their own (a few additions per batch of
lines, not per line) and hand it to :class:`Traffic` when their connection closes; a
scrape adds the open connections' counts to that. Handling times go to
:class:`LatencyHistogram`, a plain list of bucket counts that the metrics collector
turns into a Prometheus histogram only when it is scraped, so the server never pays
for the exposition format.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from ackchat.protocol.commands import (
    Broadcast,
    Command,
    Direct,
    Exit,
    Help,
    History,
    Join,
    Leave,
    Members,
    Nick,
    Resume,
    Rooms,
    Say,
    Status,
    Who,
)

# Each command whose handling time is measured, by the word a client types for it (plain
# lines are not measured: timing them would cost more than answering them).
COMMAND_NAMES: dict[type[Command], str] = {
    Status: "status",
    Help: "help",
    Exit: "exit",
    Direct: "msg",
    Broadcast: "all",
    Say: "say",
    Join: "join",
    Leave: "leave",
    Rooms: "rooms",
    Members: "members",
    Who: "who",
    Nick: "nick",
    History: "history",
    Resume: "resume",
}

# Upper bounds of the latency buckets, in seconds: from 10 microseconds (an answer from
# memory) to 2.5 seconds (a backend far away, or an overloaded loop).
LATENCY_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


@dataclass(slots=True)
class Traffic:
    """Lines and bytes received from and sent to clients."""

    lines_in: int = 0
    lines_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, lines_in: int, lines_out: int, bytes_in: int, bytes_out: int) -> None:
        """Count one connection's traffic (when it closes, or when a scrape sums them)."""
        self.lines_in += lines_in
        self.lines_out += lines_out
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out


class LatencyHistogram:
    """Observed durations in fixed buckets, with their count and sum, as Prometheus keeps them.

    ``counts[i]`` holds the observations above ``bounds[i - 1]`` and at most
    ``bounds[i]``; the last count holds those above every bound.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bucket bounds must be increasing and not empty")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        """How many durations were observed."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(bound, observations at most bound)`` for every bound, then ``(inf, count)``."""
        running = 0
        buckets = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets
