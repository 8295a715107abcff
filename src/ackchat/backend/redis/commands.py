"""A node's connection for commands: every operation of a loop turn in one round trip.

Operations are queued as they are asked for, and one task sends all that are waiting as
one batch (one write), reads the replies in order and hands each to its callback. It
does not wait for a batch's replies before sending the next: what was queued meanwhile
goes out as soon as the task gets to it, so that Redis runs one batch while this node
reads the replies of the one before. No task per operation, and under load the batches
grow instead of the round trips. Nothing is retried: a script that may have run must not
run twice, so the operations sent on a connection that fails are answered with
:class:`BackendUnavailableError`, and what is queued after goes out on a new connection.
A script Redis has lost (it restarted, SCRIPT FLUSH) is loaded again and sent again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import hiredis
from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ackchat.backend.interface import BackendUnavailableError
from ackchat.backend.redis.scripts import Script

log = logging.getLogger("ackchat.server")

# Seconds to connect, and to wait for a reply, before Redis counts as unreachable.
CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 10.0

Command = tuple[Any, ...]
OnReply = Callable[[Any], None]
OnError = Callable[[BaseException], None]
Call = tuple[Command, OnReply, OnError]


def where(url: str) -> str:
    """The Redis a URL names, without its password: ``host:port/db``."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname or "localhost"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{parts.port or 6379}{parts.path if parts.path not in ('', '/') else ''}"


def make_connection(
    url: str, name: str, *, reply_timeout: float = REPLY_TIMEOUT
) -> AbstractConnection:
    """A redis-py connection to ``url`` that never retries, named ``name`` in CLIENT LIST.

    It speaks RESP2, whose replies are plain arrays however the command answers (RESP3
    would make some of them maps), so the replies are read the same way everywhere.
    """
    options: dict[str, Any] = dict(parse_url(url))
    connection_class = options.pop("connection_class", Connection)
    options.update(
        protocol=2,
        client_name=name,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=reply_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    connection: AbstractConnection = connection_class(**options)
    return connection


async def connect(connection: AbstractConnection) -> None:
    """Connect ``connection`` (redis-py leaves ``connect`` unannotated)."""
    await connection.connect()  # type: ignore[no-untyped-call]


def unreachable(url: str, error: BaseException) -> BackendUnavailableError:
    """The error for a Redis that cannot be reached, as one sentence."""
    cause = error.__cause__ if isinstance(error.__cause__, OSError) else None
    reason = (cause.strerror if cause is not None and cause.strerror else str(error)).rstrip(".")
    return BackendUnavailableError(f"cannot reach Redis at {where(url)}: {reason}")


class _Batch:
    """Operations sent in one write, and how many of their replies were read."""

    __slots__ = ("calls", "read")

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.read = 0


class CommandConnection:
    """One connection; operations queued in a loop turn go out together."""

    def __init__(self, url: str, name: str, scripts: Sequence[Script]) -> None:
        self._url = url
        self._connection = make_connection(url, name)
        self._scripts = scripts
        self._queue: list[Call] = []
        # Sent again ahead of the queue: scripts to load, and operations that found them
        # missing.
        self._again: list[Call] = []
        self._loading = False
        # Batches sent whose replies are not all read, oldest first.
        self._sent: deque[_Batch] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Round trips made (batches sent), for the tests and the benchmarks' counts.
        self.round_trips = 0

    async def connect(self, *commands: Command) -> list[Any]:
        """Connect, load the scripts and send ``commands``, returning their replies; raises
        BackendUnavailableError if Redis cannot be reached. Then operations are sent as
        they are submitted."""
        connection = self._connection
        try:
            await connect(connection)
            loading = [self._load_command(script) for script in self._scripts]
            self.round_trips += 1
            await connection.send_packed_command(_pack([*loading, *commands]), False)
            answers = [await connection.read_response() for _ in (*loading, *commands)]
        except (RedisError, OSError) as error:
            await connection.disconnect()
            raise unreachable(self._url, error) from None
        for script, sha in zip(self._scripts, answers[: len(loading)], strict=True):
            _check_loaded(script, sha)
        self._task = asyncio.create_task(self._run(), name="ackchat redis commands")
        self._task.add_done_callback(log_crash)
        return answers[len(loading) :]

    def submit(self, command: Command, on_reply: OnReply, on_error: OnError) -> None:
        """Send ``command`` with the others of this loop turn; its reply goes to
        ``on_reply``, BackendUnavailableError (also for an error reply) to ``on_error``."""
        self._queue.append((command, on_reply, on_error))
        if not self._wake.is_set():
            self._wake.set()

    def script(
        self, script: Script, arguments: Sequence[Any], on_reply: OnReply, on_error: OnError
    ) -> None:
        """Run ``script`` (see scripts.py for its arguments) with the others of this turn."""
        self.submit((b"EVALSHA", script.sha, b"1", *arguments), on_reply, on_error)

    async def close(self) -> None:
        """Stop sending; what is still waiting for Redis is answered as unavailable."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._fail_sent(BackendUnavailableError("the backend is closed"))
        waiting, self._again, self._queue = [*self._again, *self._queue], [], []
        _fail(waiting, BackendUnavailableError("the backend is closed"))
        await self._connection.disconnect()

    async def _run(self) -> None:
        while True:
            if not (self._queue or self._again or self._sent):
                self._wake.clear()
                await self._wake.wait()
            try:
                await self._send_waiting()
                if self._sent:
                    await self._read_oldest()
            except (RedisError, OSError) as error:
                failure = unreachable(self._url, error)
                log.warning("%s", failure)
                await self._connection.disconnect(nowait=True)
                self._fail_sent(failure)

    async def _send_waiting(self) -> None:
        """Send what waits (what goes again first) as one batch."""
        calls = self._again + self._queue
        if not calls:
            return
        self._again, self._queue = [], []
        connection = self._connection
        batch = _Batch(calls)
        # From here on its answers are owed, whatever happens to the connection.
        self._sent.append(batch)
        if not connection.is_connected:
            await connect(connection)
        self.round_trips += 1
        await connection.send_packed_command(_pack([command for command, _, _ in calls]), False)

    async def _read_oldest(self) -> None:
        """Read the replies of the oldest batch, sending what is queued meanwhile."""
        batch = self._sent[0]
        connection = self._connection
        try:
            # One bound for the batch: a timer per reply costs more than reading it.
            async with asyncio.timeout(REPLY_TIMEOUT):
                while batch.read < len(batch.calls):
                    try:
                        answer = await connection.read_response(timeout=math.inf)
                    except ResponseError as error:
                        answer = error
                    call = batch.calls[batch.read]
                    batch.read += 1
                    self._answer(call, answer)
                    if self._queue or self._again:
                        await self._send_waiting()
        except TimeoutError:
            raise RedisTimeoutError(f"no reply within {REPLY_TIMEOUT:g} seconds") from None
        self._sent.popleft()

    def _answer(self, call: Call, answer: Any) -> None:
        command, on_reply, on_error = call
        if isinstance(answer, NoScriptError):
            # Redis lost its scripts: load them again, then this operation goes again.
            if not self._loading:
                self._loading = True
                log.warning("Redis lost the scripts; loading them again")
                self._again += [
                    (self._load_command(script), partial(self._loaded, script), _log_error)
                    for script in self._scripts
                ]
            self._again.append(call)
        elif isinstance(answer, ResponseError):
            log.error("Redis refused %s: %s", command[0], answer)
            _call(on_error, BackendUnavailableError(f"Redis refused {command[0]!r}: {answer}"))
        else:
            _call(on_reply, answer)

    def _load_command(self, script: Script) -> Command:
        return (b"SCRIPT", b"LOAD", script.source)

    def _loaded(self, script: Script, sha: Any) -> None:
        self._loading = False
        _check_loaded(script, sha)

    def _fail_sent(self, error: BaseException) -> None:
        """Answer every operation sent but not answered: whether it ran is not known."""
        while self._sent:
            batch = self._sent.popleft()
            _fail(batch.calls[batch.read :], error)
        self._loading = False


def _pack(commands: Sequence[Command]) -> bytes:
    """Commands in RESP, by hiredis in C (several times faster than redis-py's packing)."""
    return b"".join(map(hiredis.pack_command, commands))


def _check_loaded(script: Script, sha: Any) -> None:
    if isinstance(sha, ResponseError) or sha != script.sha:
        raise RuntimeError(f"Redis did not load the {script.name} script: {sha!r}")


def log_crash(task: asyncio.Task[None]) -> None:
    """Log a backend task that ended with an error it did not expect (a bug)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())


def _log_error(error: BaseException) -> None:
    log.error("%s", error)


def _fail(calls: Sequence[Call], error: BaseException) -> None:
    for _, _, on_error in calls:
        _call(on_error, error)


def _call(callback: Callable[[Any], None], value: Any) -> None:
    """Run a reply callback; one that fails is logged, and the other replies still go out."""
    try:
        callback(value)
    except Exception:
        log.exception("handling a Redis reply failed")
