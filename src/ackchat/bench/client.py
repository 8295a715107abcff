"""The load generator's connections: a lean Protocol for echo load, and a scripted one.

:class:`EchoConnection` is the hot path: it keeps ``pipeline`` requests in flight, checks
each reply against the request it answers and times it, with no coroutine per message.
:class:`ScriptConnection` offers awaitable reads for the slower scenarios (connect cycles,
status, idle clients), where clarity matters more than a few microseconds.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

from ackchat.bench.stats import LatencyHistogram, ReplyRule
from ackchat.client.errors import (
    EXIT_AUTH_FAILED,
    EXIT_CONNECT_FAILED,
    EXIT_ERROR,
    EXIT_SERVER_CLOSED,
    EXIT_SERVER_FULL,
)
from ackchat.client.session import connect_error
from ackchat.errors import AckchatError
from ackchat.protocol.framing import LineFramer, LineTooLong
from ackchat.protocol.replies import (
    AUTH_REQUIRED,
    END_OF_BLOCK,
    GREETING_PREFIX,
    REFUSED_PREFIX,
    SERVER_FULL,
    SERVER_SHUTTING_DOWN,
    SERVER_UNAVAILABLE,
    host_port,
)
from ackchat.settings import ClientSettings

# Replies and status lines are short; anything longer is an error of the server.
MAX_REPLY_BYTES = 1 << 20
# Latencies are handed to the histogram in batches of this many, to keep the hot path short.
FLUSH_SAMPLES = 4096
# How many mismatched replies are kept to show the reader.
KEPT_ERRORS = 5
# Seconds to connect, and again to be greeted: the client's default, so both give up alike.
CONNECT_TIMEOUT = ClientSettings().connect_timeout
GREETING = GREETING_PREFIX.encode()
FULL = SERVER_FULL.encode()
END = END_OF_BLOCK.encode()
LINE_PROTOCOL_HINT = (
    "for a server that sends no greeting (a line echo server, redis-server) use --line-protocol"
)
CLOSED = "the server closed the connection"
CLOSED_BEFORE_GREETING = f"{CLOSED} without a greeting."
CLOSED_HINT = "did it stop, or cut clients off for a limit?"
NO_PASSWORD = (
    "the server asks for a password, which ackchat bench cannot give;"
    " measure a server started without --password."
)

P = TypeVar("P", bound=asyncio.Protocol)
T = TypeVar("T")


class BenchError(AckchatError):
    """A benchmark cannot go on (the root of the load generator's errors): one sentence, and
    the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ServerFullError(BenchError):
    """The server said it is full; ``admitted`` of this process's connections were open then."""

    def __init__(self, admitted: int = 0) -> None:
        super().__init__("the server is full", EXIT_SERVER_FULL)
        self.admitted = admitted


def closed_early(exc: Exception | None) -> str:
    """The sentence for a connection the server closed (``exc``: how) before the run ended."""
    how = "end of stream"
    if isinstance(exc, OSError) and exc.strerror:
        how = exc.strerror.lower()
    return f"{CLOSED} ({how}); {CLOSED_HINT}"


def first_line_error(line: bytes | LineTooLong) -> BenchError | None:
    """None if ``line`` opens an ackchat greeting; otherwise why the server did not greet."""
    if type(line) is not bytes:
        return BenchError(f"the server's first line is over-long; {LINE_PROTOCOL_HINT}.")
    if line.startswith(GREETING):
        return None
    if line == FULL:
        return ServerFullError()
    text = line.decode(errors="replace")
    if text.startswith(REFUSED_PREFIX):
        return BenchError(text, EXIT_CONNECT_FAILED)
    if text == AUTH_REQUIRED:
        return BenchError(NO_PASSWORD, EXIT_AUTH_FAILED)
    if text == SERVER_SHUTTING_DOWN:
        return BenchError("the server is shutting down.", EXIT_SERVER_CLOSED)
    if text == SERVER_UNAVAILABLE:
        return BenchError(text, EXIT_SERVER_CLOSED)
    return BenchError(
        f"the server does not greet as ackchat does (its first line: {text!r});"
        f" {LINE_PROTOCOL_HINT}."
    )


async def open_connection(factory: Callable[[], P], host: str, port: int) -> P:
    """Connect within ``CONNECT_TIMEOUT``; a failure says what ``ackchat connect`` says."""
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await asyncio.wait_for(
            loop.create_connection(factory, host, port), CONNECT_TIMEOUT
        )
    except OSError as error:
        if error.errno == errno.EMFILE:
            raise BenchError(
                "too many open files in one load generator process;"
                " use fewer --connections or more --workers, or raise ulimit -n."
            ) from None
        failure = connect_error(error, host_port(host, port), CONNECT_TIMEOUT, None)
        raise BenchError(str(failure), failure.exit_code) from None
    return protocol


async def greeted_in_time(greeting: Awaitable[T], host: str, port: int) -> T:
    """Await the greeting (or what follows it) within ``CONNECT_TIMEOUT``."""
    try:
        return await asyncio.wait_for(greeting, CONNECT_TIMEOUT)
    except TimeoutError:
        raise BenchError(
            f"{host_port(host, port)} accepted the connection but sent no greeting within"
            f" {CONNECT_TIMEOUT:g} seconds; {LINE_PROTOCOL_HINT}.",
            EXIT_CONNECT_FAILED,
        ) from None


class Tally:
    """The shared state of one process's echo load: the window, the counts and the samples."""

    def __init__(self, requests_limit: int = 0) -> None:
        self.sending = False
        self.measuring = False
        self.replies = 0
        self.all_replies = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.requests_limit = requests_limit
        self.latency = LatencyHistogram()
        self.samples: list[int] = []
        self.limit_reached: asyncio.Future[None] | None = None

    def flush(self) -> None:
        """Move the batched latencies into the histogram."""
        self.latency.record_many(self.samples)
        self.samples.clear()

    def finish(self) -> None:
        """Stop sending: the request limit is reached."""
        self.sending = False
        if self.limit_reached is not None and not self.limit_reached.done():
            self.limit_reached.set_result(None)

    def error(self, description: str) -> None:
        """Count an error and keep the first few for the report."""
        self.errors += 1
        if len(self.error_samples) < KEPT_ERRORS:
            self.error_samples.append(description)

    def mismatch(self, expected: bytes, got: bytes | LineTooLong) -> None:
        """Count a wrong reply."""
        self.error(f"expected {expected!r}, got {got!r}")


class EchoConnection(asyncio.Protocol):
    """One connection under echo load: ``pipeline`` requests in flight, replies checked."""

    def __init__(
        self,
        tally: Tally,
        requests: Sequence[bytes],
        rule: ReplyRule,
        pipeline: int,
        greeting: bool,
    ) -> None:
        self._tally = tally
        self._requests = [request + b"\n" for request in requests]
        self._expected = [rule.expected(request) for request in requests]
        self._exact = rule.exact
        self._suffix = rule.suffix
        self._pipeline = pipeline
        self._in_greeting = greeting
        self._greeted = False
        self._framer = LineFramer(MAX_REPLY_BYTES)
        self._sent_at: deque[int] = deque()
        self._next_request = 0
        self._next_reply = 0
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if not self._in_greeting:
            self.ready.set_result(None)

    def start(self) -> None:
        """Send the first ``pipeline`` requests."""
        self._send(self._pipeline)

    def close(self) -> None:
        """Close the socket (the server sees the peer go away)."""
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        lines = self._framer.feed(data)
        if self._in_greeting:
            lines = self._greeting(lines)
            if not lines:
                return
        now = time.monotonic_ns()
        tally = self._tally
        sent_at = self._sent_at
        expected = self._expected
        count = len(expected)
        index = self._next_reply
        measuring = tally.measuring
        samples = tally.samples
        for line in lines:
            if not sent_at:
                tally.mismatch(b"(nothing: no request in flight)", line)
                continue
            sent = sent_at.popleft()
            if self._exact:
                if line != expected[index]:
                    tally.mismatch(expected[index], line)
            elif type(line) is not bytes or not line.endswith(self._suffix):
                tally.mismatch(b"..." + self._suffix, line)
            index = (index + 1) % count
            if measuring:
                samples.append((now - sent) // 1000)
        self._next_reply = index
        answered = len(lines)
        tally.all_replies += answered
        if measuring:
            tally.replies += answered
            if len(samples) >= FLUSH_SAMPLES:
                tally.flush()
            if tally.requests_limit and tally.replies >= tally.requests_limit:
                tally.finish()
        if tally.sending:
            self._send(answered)
        elif not sent_at and not self.drained.done():
            self.drained.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._in_greeting:
            error = BenchError(CLOSED_BEFORE_GREETING, EXIT_SERVER_CLOSED)
        else:
            error = BenchError(closed_early(exc))
        if self._sent_at or self._tally.sending:
            # A connection lost under load ends the run: its figures would be wrong.
            self._tally.error(str(error))
            self._tally.finish()
        if not self.ready.done():
            self.ready.set_exception(error)
        elif self.ready.exception() is None and not self.drained.done():
            # Only a connection that got ready is drained: nothing waits on the others.
            self.drained.set_exception(error)

    def _greeting(self, lines: Sequence[bytes | LineTooLong]) -> Sequence[bytes | LineTooLong]:
        """Check and skip the greeting block; return the lines after it."""
        for position, line in enumerate(lines):
            if not self._greeted:
                self._greeted = True
                error = first_line_error(line)
                if error is not None:
                    self.ready.set_exception(error)
                    self._in_greeting = False
                    return []
            elif line == END:
                self._in_greeting = False
                self.ready.set_result(None)
                return lines[position + 1 :]
        return []

    def _send(self, number: int) -> None:
        assert self._transport is not None
        requests = self._requests
        count = len(requests)
        index = self._next_request
        now = time.monotonic_ns()
        chunk = []
        for _ in range(number):
            chunk.append(requests[index])
            index = (index + 1) % count
        self._next_request = index
        self._sent_at.extend([now] * number)
        self._transport.write(b"".join(chunk))


class ScriptConnection(asyncio.Protocol):
    """A connection read line by line with awaits, for scripted exchanges."""

    def __init__(self) -> None:
        self._framer = LineFramer(MAX_REPLY_BYTES)
        self._lines: deque[bytes | LineTooLong] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._ended = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, host: str, port: int) -> ScriptConnection:
        """Connect to ``host:port``."""
        return await open_connection(cls, host, port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._lines.extend(self._framer.feed(data))
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake()
        if not self.closed.done():
            self.closed.set_result(None)

    def write_line(self, text: bytes) -> None:
        """Send one line."""
        assert self._transport is not None
        self._transport.write(text + b"\n")

    def close(self) -> None:
        """Close the socket from this side."""
        if self._transport is not None:
            self._transport.close()

    async def read_line(self) -> bytes:
        """The next line; raises :class:`BenchError` at the end of the stream."""
        line = await self._next()
        if line is None:
            raise BenchError(closed_early(None))
        if type(line) is not bytes:
            raise BenchError("the server sent an over-long line")
        return line

    async def read_block(self) -> list[bytes]:
        """The lines of a multi-line reply, up to and without its end marker."""
        lines: list[bytes] = []
        while (line := await self.read_line()) != END:
            lines.append(line)
        return lines

    async def greeting(self) -> bytes:
        """Read the greeting block; returns its first line, or raises why there is none."""
        first = await self._next()
        if first is None:
            raise BenchError(CLOSED_BEFORE_GREETING, EXIT_SERVER_CLOSED)
        error = first_line_error(first)
        if error is not None:
            raise error
        while await self.read_line() != END:
            pass
        return cast(bytes, first)

    async def _next(self) -> bytes | LineTooLong | None:
        """The next line as framed, or None at the end of the stream."""
        while not self._lines:
            if self._ended:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._lines.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
