"""A node's connection for commands: every operation of a loop turn in one round trip.

Operations are queued as they are asked for, and one task sends all that are waiting as
one batch (one write), reads the replies in order and hands each to its callback. It
does not wait for a batch's replies before sending the next: what was queued meanwhile
goes out as soon as the task gets to it, so that Redis runs one batch while this node
reads the replies of the one before. No task per operation, and under load the batches
grow instead of the round trips. Nothing is retried: a script that may have run must not
run twice, so the operations sent on a connection that fails are answered with
:class:`BackendUnavailableError`. A script Redis has lost (FUNCTION FLUSH, or a
Redis Cluster master that never had the library) is loaded again and sent again, and so
is an operation a Redis Cluster redirected (it did not run): once every reply owed on
the connection is read, the connection is made again on the master that holds the
cluster's slot now (slot.py), and what was redirected goes there, in its order, before
anything else; a few redirections in a row count as a lost connection. A new connection
(at start, after an outage) follows redirections too, before it recovers.

When the connection fails, the connection is *down*: every operation is answered with
BackendUnavailableError at once (nothing waits on a Redis that is not there), and one
attempt after another reconnects, with delays that grow and are jittered
(liveness.reconnect_delays). On a new connection the scripts' library is loaded, and the
backend's ``recover`` gets the connection to itself (``ask``) before anything else goes
out: it beats and registers the node's clients again, so that the first operation after
an outage finds the cluster's state as it should be.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import hiredis
from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ackchat.backend.interface import BackendUnavailableError
from ackchat.backend.redis.liveness import LinkFaults
from ackchat.backend.redis.scripts import Library, Script
from ackchat.backend.redis.slot import (
    MAX_REDIRECTS,
    REDIRECTIONS,
    Address,
    Moved,
    Redirection,
    SlotUnreachableError,
    is_redirection,
    moved,
    pause,
    shown,
)

log = logging.getLogger("ackchat.server")

# Seconds to connect, and to wait for a reply, before Redis counts as unreachable.
CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 10.0

Command = tuple[Any, ...]
OnReply = Callable[[Any], None]
OnError = Callable[[BaseException], None]
Call = tuple[Command, OnReply, OnError]
# Sends commands on the connection at once and gives their replies (raising on an error).
Ask = Callable[..., Awaitable[list[Any]]]
# What the backend does on a new connection before anything else is sent.
Recover = Callable[[Ask], Awaitable[None]]


def where(url: str) -> str:
    """The Redis a URL names, without its password: ``host:port/db``."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname or "localhost"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{parts.port or 6379}{parts.path if parts.path not in ('', '/') else ''}"


def make_connection(
    url: str,
    name: str,
    *,
    reply_timeout: float | None = REPLY_TIMEOUT,
    address: Address | None = None,
) -> AbstractConnection:
    """A redis-py connection to ``url`` that never retries, named ``name`` in CLIENT LIST;
    to ``address`` instead of the URL's host and port if given (with the URL's password,
    TLS and database all the same). With no ``reply_timeout``, its user bounds each wait.

    It speaks RESP2, whose replies are plain arrays however the command answers (RESP3
    would make some of them maps), so the replies are read the same way everywhere.
    """
    options: dict[str, Any] = dict(parse_url(url))
    connection_class = options.pop("connection_class", Connection)
    if address is not None:
        if options.pop("path", None) is not None:
            # A Redis Cluster names its masters by TCP address, even to a socket's client.
            connection_class = Connection
        options["host"], options["port"] = address
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


async def stop_reading(task: asyncio.Task[None], connection: AbstractConnection) -> None:
    """Stop ``task``, which reads replies on ``connection``, and wait until it has ended.

    A read in progress in redis-py may swallow the cancellation (a task cancelled while
    it waits for a reply can go on waiting): closing the connection as well ends such a
    read with an error, and the task, told by its owner that it is stopping, ends on it.
    """
    task.cancel()
    await connection.disconnect(nowait=True)
    await asyncio.gather(task, return_exceptions=True)


def unreachable(url: str, error: BaseException) -> BackendUnavailableError:
    """The error for a Redis that cannot be reached, as one sentence."""
    cause = error.__cause__ if isinstance(error.__cause__, OSError) else None
    reason = (cause.strerror if cause is not None and cause.strerror else str(error)).rstrip(".")
    return BackendUnavailableError(f"cannot reach Redis at {where(url)}: {reason}")


class MasterLink:
    """One of a node's connections (commands, the stream's reader), to the master that
    holds the cluster's slot: the URL's Redis until a redirection names another master.
    A new connection goes to the master last named, or to the URL's Redis if that one
    cannot be reached (a failover took it away): from there a redirection leads on."""

    def __init__(self, url: str, name: str, reply_timeout: float | None) -> None:
        self._url = url
        self._name = name
        self._reply_timeout = reply_timeout
        self.connection = make_connection(url, name, reply_timeout=reply_timeout)
        # The master a redirection named, or None for the URL's Redis.
        self.master: Address | None = None

    async def connect(self) -> None:
        """Connect to the master last named, else to the URL's Redis."""
        try:
            await connect(self.connection)
        except (RedisError, OSError):
            if self.master is None:
                raise
            await self.connection.disconnect(nowait=True)
            self._point(None)
            await connect(self.connection)

    def follow(self, redirection: Redirection) -> Moved | None:
        """Point at the master a ``MOVED`` names (connected at the next :meth:`connect`;
        the connection must be closed first); None for a migration under way, which
        leaves the slot where it is."""
        host = self.master[0] if self.master else urlsplit(self._url).hostname or "localhost"
        found = moved(redirection, host)
        if found is not None:
            self._point(found.master)
        return found

    def _point(self, master: Address | None) -> None:
        self.master = master
        self.connection = make_connection(
            self._url, self._name, reply_timeout=self._reply_timeout, address=master
        )


class _Batch:
    """Operations sent in one write, and how many of their replies were read."""

    __slots__ = ("calls", "read")

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.read = 0


class CommandConnection:
    """One connection; operations queued in a loop turn go out together."""

    def __init__(
        self,
        url: str,
        name: str,
        library: Library,
        *,
        recover: Recover,
        delays: Callable[[], Iterator[float]],
        lost: Callable[[], None],
    ) -> None:
        """``recover`` runs on every new connection, before any operation; ``delays``
        makes the waits between reconnection attempts; ``lost`` is told when the
        connection fails."""
        self._url = url
        # No timeout of redis-py's: it would start a task for every write (wait_for); one
        # bound of this class's covers a batch's write and its replies instead.
        self._link = MasterLink(url, name, None)
        self._library = library
        self._recover = recover
        self._delays = delays
        self._on_lost = lost
        self._queue: list[Call] = []
        # Sent again ahead of the queue: the library to load, and operations that found
        # it missing.
        self._again: list[Call] = []
        self._loading = False
        # Batches sent whose replies are not all read, oldest first.
        self._sent: deque[_Batch] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Whether operations are sent (connected and recovered) or refused at once.
        self._available = False
        # Set while the task is being stopped: an error then ends it (see stop_reading).
        self._stopping = False
        # The last redirection answered on this connection, while its replies are still
        # being read: then nothing more is sent on it (see _follow).
        self._redirected: Redirection | None = None
        # Redirections in a row, with no other answer between.
        self._redirects = 0
        # Round trips made (batches sent), for the tests and the benchmarks' counts.
        self.round_trips = 0
        # What went wrong on it, by kind, and its reconnections (for /metrics).
        self.faults = LinkFaults()

    @property
    def _connection(self) -> AbstractConnection:
        return self._link.connection

    @property
    def available(self) -> bool:
        """Whether operations go to Redis now (else they are refused at once)."""
        return self._available

    async def connect(self, *commands: Command) -> list[Any]:
        """Connect, load the scripts' library, send ``commands`` and recover, returning the replies
        to ``commands``; raises BackendUnavailableError if Redis cannot be reached. Then
        operations are sent as they are submitted."""
        try:
            answers = await self._establish(commands)
        except LibraryRefusedError as error:
            await self._connection.disconnect()
            raise BackendUnavailableError(str(error)) from None
        except (RedisError, OSError) as error:
            await self._connection.disconnect()
            raise unreachable(self._url, error) from None
        self._available = True
        self._task = asyncio.create_task(self._run(), name="ackchat redis commands")
        self._task.add_done_callback(log_crash)
        return answers

    def submit(self, command: Command, on_reply: OnReply, on_error: OnError) -> None:
        """Send ``command`` with the others of this loop turn; its reply goes to
        ``on_reply``, BackendUnavailableError (also for an error reply) to ``on_error``,
        at once while Redis cannot be reached."""
        if not self._available:
            _call(on_error, BackendUnavailableError(f"cannot reach Redis at {where(self._url)}"))
            return
        self._queue.append((command, on_reply, on_error))
        if not self._wake.is_set():
            self._wake.set()

    def script(
        self, script: Script, arguments: Sequence[Any], on_reply: OnReply, on_error: OnError
    ) -> None:
        """Run ``script`` (see scripts.py for its arguments) with the others of this turn."""
        self.submit(script_command(script, arguments), on_reply, on_error)

    async def close(self) -> None:
        """Stop sending; what is still waiting for Redis is answered as unavailable."""
        self._available = False
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            await stop_reading(task, self._connection)
        self._fail_all(BackendUnavailableError("the backend is closed"))
        await self._connection.disconnect()

    async def _establish(self, commands: Sequence[Command] = ()) -> list[Any]:
        """Connect to the master that holds the cluster's slot, load the library, send
        ``commands`` and recover; the replies to ``commands``. A redirection on the way
        is followed, a few at most: MOVED at once, a migration under way after a pause."""
        for redirects in range(1, MAX_REDIRECTS + 1):
            try:
                answers = await self._open(commands)
                await self._recover(self._ask)
            except REDIRECTIONS as redirection:
                await self._connection.disconnect(nowait=True)
                await self._go(redirection, redirects)
            else:
                return answers
        raise SlotUnreachableError(
            f"Redis Cluster redirected the cluster's slot {MAX_REDIRECTS} times in a row"
        )

    async def _go(self, redirection: Redirection, redirects: int) -> None:
        """Point the connection at the master ``redirection`` names, or wait before trying
        the same one again while the slot is being migrated."""
        was = where(self._url) if self._link.master is None else shown(self._link.master)
        found = self._link.follow(redirection)
        if found is None:
            await asyncio.sleep(pause(redirects))
            return
        log.info(
            "the Redis Cluster master at %s holds the cluster's slot %d (not the one at %s);"
            " connecting there",
            shown(found.master),
            found.slot,
            was,
        )

    async def _follow(self) -> None:
        """Every reply owed on the connection is read after a redirection: make it again
        where the slot is, and send there, first and in their order, the operations that
        were redirected (they did not run). The slot moved with its keys, so the state is
        as this node left it: the library is loaded, and nothing needs recovering."""
        redirection, self._redirected = self._redirected, None
        assert redirection is not None
        self._redirects += 1
        if self._redirects > MAX_REDIRECTS:
            raise SlotUnreachableError(
                f"Redis Cluster redirected {MAX_REDIRECTS} operations in a row ({redirection})"
            )
        await self._connection.disconnect(nowait=True)
        await self._go(redirection, self._redirects)
        await self._open(())

    async def _open(self, commands: Sequence[Command]) -> list[Any]:
        """Connect, load the library and send ``commands``; their replies."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT + REPLY_TIMEOUT):
                await self._link.connect()
        except TimeoutError:
            raise RedisTimeoutError(
                f"no answer within {CONNECT_TIMEOUT + REPLY_TIMEOUT:g} seconds of connecting"
            ) from None
        try:
            loaded, *answers = await self._ask(self._load_command(), *commands)
        except ResponseError as error:
            if is_redirection(error):
                raise
            raise library_refused(self._url, error) from None
        _check_loaded(self._library, loaded)
        return answers

    async def _ask(self, *commands: Command) -> list[Any]:
        """Send ``commands`` in one round trip and read their replies, while nothing else
        uses the connection (connecting, recovering)."""
        connection = self._connection
        self.round_trips += 1
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                await connection.send_packed_command(_pack(commands), False)
                return [await connection.read_response() for _ in commands]
        except TimeoutError:
            raise RedisTimeoutError(f"no reply within {REPLY_TIMEOUT:g} seconds") from None

    async def _run(self) -> None:
        while True:
            if not (self._queue or self._again or self._sent or self._redirected):
                self._wake.clear()
                await self._wake.wait()
            try:
                try:
                    # One bound for a batch: a timer per reply costs more than reading it.
                    async with asyncio.timeout(REPLY_TIMEOUT):
                        await self._send_waiting()
                        if self._sent:
                            await self._read_oldest()
                        elif self._redirected is not None:
                            await self._follow()
                except TimeoutError:
                    raise RedisTimeoutError(f"no reply within {REPLY_TIMEOUT:g} seconds") from None
            except (RedisError, OSError) as error:
                if self._stopping:
                    return
                self.faults.failed(isinstance(error, RedisTimeoutError))
                await self._reconnect(unreachable(self._url, error))
                if self._stopping:
                    return

    async def _reconnect(self, failure: BackendUnavailableError) -> None:
        """The connection failed: refuse operations until a new one is up and recovered,
        trying again and again with growing, jittered delays."""
        self._available = False
        log.warning("%s; reconnecting (new clients and chat are turned away meanwhile)", failure)
        await self._connection.disconnect(nowait=True)
        self._fail_all(failure)
        self._on_lost()
        began = time.monotonic()
        attempts = 0
        for delay in self._delays():
            await asyncio.sleep(delay)
            if self._stopping:
                return
            attempts += 1
            try:
                await self._establish()
            except ResponseError as error:
                log.error("Redis refused this node's recovery: %s", error)
            except (RedisError, OSError) as error:
                log.debug("%s", unreachable(self._url, error))
            else:
                break
            self.faults.attempt_failed()
            await self._connection.disconnect(nowait=True)
        if self._stopping:
            return
        self._available = True
        self._redirects = 0
        self.faults.reconnected()
        log.info(
            "reconnected to Redis at %s after %.1f seconds (%d attempts)",
            where(self._url),
            time.monotonic() - began,
            attempts,
        )

    async def _send_waiting(self) -> None:
        """Send what waits (what goes again first) as one batch, unless the connection was
        redirected (what waits goes to the slot's master once the owed replies are read)."""
        if self._redirected is not None:
            return
        calls = self._again + self._queue
        if not calls:
            return
        self._again, self._queue = [], []
        batch = _Batch(calls)
        # From here on its answers are owed, whatever happens to the connection.
        self._sent.append(batch)
        self.round_trips += 1
        await self._connection.send_packed_command(
            _pack([command for command, _, _ in calls]), False
        )

    async def _read_oldest(self) -> None:
        """Read the replies of the oldest batch, sending what is queued meanwhile."""
        batch = self._sent[0]
        connection = self._connection
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
        self._sent.popleft()

    def _answer(self, call: Call, answer: Any) -> None:
        command, on_reply, on_error = call
        if not isinstance(answer, ResponseError):
            self._redirects = 0
            _call(on_reply, answer)
        elif is_missing_function(answer):
            # Redis lost the library: load it again, then this operation goes again.
            if not self._loading:
                self._loading = True
                log.warning("Redis lost the scripts; loading them again")
                self._again.append((self._load_command(), self._loaded, _unanswered))
            self._again.append(call)
        elif is_redirection(answer):
            # It did not run: it goes again where the slot is, once the replies owed on
            # this connection are read (_follow).
            self._redirected = answer
            self._again.append(call)
        else:
            self.faults.refused()
            log.error("Redis refused %s: %s", command[0], answer)
            _call(on_error, BackendUnavailableError(f"Redis refused {command[0]!r}: {answer}"))

    def _load_command(self) -> Command:
        # REPLACE: the same code again (a library of this name is this version's).
        return (b"FUNCTION", b"LOAD", b"REPLACE", self._library.source)

    def _loaded(self, name: Any) -> None:
        self._loading = False
        _check_loaded(self._library, name)

    def _fail_all(self, error: BaseException) -> None:
        """Answer every operation sent but not answered (whether it ran is not known)
        and every one waiting to be sent."""
        while self._sent:
            batch = self._sent.popleft()
            _fail(batch.calls[batch.read :], error)
        self._loading = False
        self._redirected = None
        waiting, self._again, self._queue = [*self._again, *self._queue], [], []
        _fail(waiting, error)


def script_command(script: Script, arguments: Sequence[Any]) -> Command:
    """The command that runs ``script`` with ``arguments`` (its one key among them)."""
    return (b"FCALL", script.function, b"1", *arguments)


def is_missing_function(error: ResponseError) -> bool:
    """Whether Redis refused a call because it has no such function (it lost the library)."""
    return str(error).startswith("Function not found")


class LibraryRefusedError(ResponseError):
    """Redis would not load the scripts' library (too old, or not allowed to)."""


def library_refused(url: str, error: ResponseError) -> LibraryRefusedError:
    """The error for a Redis that would not load the library, as one sentence."""
    reason = str(error).rstrip(".")
    if "unknown command" in reason.lower():
        reason = "it needs Redis 7.0 or newer (FUNCTION LOAD)"
    return LibraryRefusedError(f"Redis at {where(url)} did not load ackchat's scripts: {reason}")


def _pack(commands: Sequence[Command]) -> bytes:
    """Commands in RESP, by hiredis in C (several times faster than redis-py's packing)."""
    return b"".join(map(hiredis.pack_command, commands))


def _check_loaded(library: Library, name: Any) -> None:
    if isinstance(name, ResponseError) or name != library.name:
        raise RuntimeError(f"Redis did not load the {library.name.decode()} library: {name!r}")


def log_crash(task: asyncio.Task[None]) -> None:
    """Log a backend task that ended with an error it did not expect (a bug)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())


def _unanswered(_: BaseException) -> None:
    """A script load that got no answer: a refusal is logged as it comes, and a new
    connection loads every script anyway."""


def _fail(calls: Sequence[Call], error: BaseException) -> None:
    for _, _, on_error in calls:
        _call(on_error, error)


def _call(callback: Callable[[Any], None], value: Any) -> None:
    """Run a reply callback; one that fails is logged, and the other replies still go out."""
    try:
        callback(value)
    except Exception:
        log.exception("handling a Redis reply failed")
