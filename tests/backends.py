"""Test helpers around backends: a clock the test moves, and answers that come later.

``DeferredBackend`` wraps a real memory backend and answers every call with a
``Pending`` that the test settles (or fails) when it chooses, as a remote backend
would: it exercises the parking of sessions and the dispatch of later answers.
``redis_backend`` makes a Redis backend on a real redis-server (tests/redisserver.py),
in a cluster of its own unless told which; a :class:`Lapse` lets a held session's grace
pass, on the manual clock or, for Redis (whose own clock measures it), in real time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio

from ackchat.backend.interface import BackendUnavailableError, Clock, SettingsListener
from ackchat.backend.memory import MemoryBackend
from ackchat.backend.pending import Pending
from ackchat.backend.redis.backend import RedisBackend


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

    def watch_settings(self, listener: SettingsListener) -> None:
        """Not an operation with an answer: the listener is the inner backend's at once."""
        self.inner.watch_settings(listener)

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


def redis_url(port: int) -> str:
    """The URL of the test redis-server on ``port``."""
    return f"redis://127.0.0.1:{port}/0"


def fresh_cluster() -> str:
    """A cluster name no other test uses, so that tests sharing a Redis never meet."""
    return f"test-{uuid.uuid4().hex[:12]}"


def redis_backend(
    url: str,
    clock: Clock | None = None,
    *,
    cluster: str | None = None,
    node: str = "",
    **sizes: Any,
) -> RedisBackend:
    """A Redis backend (not started) sized as :func:`memory_backend`, as node ``node`` of
    ``cluster`` (a fresh one by default)."""
    options: dict[str, Any] = {"max_clients": 3, "history_limit": 100, **sizes}
    return RedisBackend(
        url,
        cluster_name=cluster or fresh_cluster(),
        node_id=node,
        clock=clock or ManualClock(),
        **options,
    )


# Starts a node of the cluster: its node id, then options over the defaults (``url`` too).
OpenNode = Callable[..., Awaitable[RedisBackend]]


@asynccontextmanager
async def started_nodes(
    url: str, cluster: str, clock: Clock | None = None, **defaults: Any
) -> AsyncIterator[OpenNode]:
    """Start Redis backends as nodes of ``cluster``, each with ``defaults`` under its own
    options; every one is closed at the end."""
    opened: list[RedisBackend] = []

    async def open_one(node: str, **options: Any) -> RedisBackend:
        options = {**defaults, **options}
        backend = redis_backend(
            options.pop("url", url), clock, cluster=cluster, node=node, **options
        )
        await backend.start()
        opened.append(backend)
        return backend

    try:
        yield open_one
    finally:
        for backend in opened:
            await backend.close()


# How often and how long a test polls for a condition (seconds).
POLL_INTERVAL = 0.02
POLL_LIMIT = 10.0


async def redis_time(url: str) -> float:
    """Redis's own clock (TIME), which measures held sessions' grace periods."""
    client = redis.asyncio.from_url(url)
    try:
        seconds, microseconds = await client.time()
    finally:
        await client.aclose()
    return seconds + microseconds / 1_000_000


class Lapse(Protocol):
    """Time passing for held sessions, as the backend under test measures it."""

    # The resume grace to open the backend with.
    grace: float

    async def within_grace(self) -> None:
        """Time passes, but less than the grace of sessions held just now."""

    async def past_grace(self) -> None:
        """Time passes beyond the grace of every session held so far."""


class ManualLapse:
    """The grace on the manual clock: it passes when the clock is moved."""

    grace = 30.0

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self._elapsed = 0.0

    async def within_grace(self) -> None:
        self._clock.advance(self.grace - 1.0)
        self._elapsed += self.grace - 1.0

    async def past_grace(self) -> None:
        self._clock.advance(self.grace + 1.0 - self._elapsed)
        self._elapsed = 0.0


class RedisLapse:
    """A short real grace, measured by Redis's clock: the test polls it until it is over."""

    grace = 2.0

    def __init__(self, url: str) -> None:
        self._url = url

    async def within_grace(self) -> None:
        """Nothing to wait for: checked right after the hold, the grace is still running."""

    async def past_grace(self) -> None:
        over = await redis_time(self._url) + self.grace
        deadline = time.monotonic() + self.grace + POLL_LIMIT
        while await redis_time(self._url) <= over:
            assert time.monotonic() < deadline, "Redis's clock did not pass the grace period"
            await asyncio.sleep(POLL_INTERVAL)
