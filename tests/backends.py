"""Test helpers around backends: a clock the test moves, and answers that come later.

``DeferredBackend`` wraps a real memory backend and answers every call with a
``Pending`` that the test settles (or fails) when it chooses, as a remote backend
would: it exercises the parking of sessions and the dispatch of later answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ackchat.backend.interface import BackendUnavailableError
from ackchat.backend.memory import MemoryBackend
from ackchat.backend.pending import Pending


@dataclass
class ManualClock:
    """Wall and monotonic clocks that move only when told."""

    now: float = 1_700_000_000.0
    mono: float = 100.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        """Both clocks move on by ``seconds``."""
        self.now += seconds
        self.mono += seconds


def memory_backend(clock: ManualClock | None = None, **sizes: Any) -> MemoryBackend:
    """A memory backend on a manual clock, with room for a few clients by default."""
    options: dict[str, Any] = {"max_clients": 3, "history_limit": 100, **sizes}
    return MemoryBackend(clock or ManualClock(), **options)


class DeferredBackend:
    """A memory backend whose every answer is pending until :meth:`settle` or :meth:`fail`."""

    def __init__(self, inner: MemoryBackend) -> None:
        self.inner = inner
        self.waiting: list[tuple[Pending[Any], Callable[[], Any]]] = []

    @property
    def max_clients(self) -> int:
        return self.inner.max_clients

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, operation: str) -> Callable[..., Pending[Any]]:
        method = getattr(self.inner, operation)

        def deferred(*arguments: Any, **keywords: Any) -> Pending[Any]:
            pending: Pending[Any] = Pending()
            self.waiting.append((pending, lambda: method(*arguments, **keywords)))
            return pending

        return deferred

    def settle(self) -> int:
        """Carry out every waiting call in order and settle its answer; returns how many."""
        done = 0
        while self.waiting:
            pending, call = self.waiting.pop(0)
            try:
                value = call()
            except Exception as error:
                pending.set_exception(error)
            else:
                pending.set_result(value)
            done += 1
        return done

    def fail(self) -> int:
        """Fail every waiting call as an unreachable backend would; returns how many."""
        failed = 0
        while self.waiting:
            pending, _ = self.waiting.pop(0)
            pending.set_exception(BackendUnavailableError("the backend is unreachable"))
            failed += 1
        return failed
