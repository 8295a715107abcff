"""The load generator's connections: a lean Protocol for echo load, and a scripted one.

:class:`EchoConnection` is the hot path: it keeps ``pipeline`` requests in flight, checks
each reply against the request it answers and times it, with no coroutine per message.
:class:`ScriptConnection` offers awaitable reads for the slower scenarios (connect cycles,
status, idle clients), where clarity matters more than a few microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from typing import cast

from ackchat.bench.stats import LatencyHistogram, ReplyRule
from ackchat.protocol.framing import LineFramer, LineTooLong
from ackchat.protocol.replies import END_OF_BLOCK, GREETING_PREFIX, SERVER_FULL

# Replies and status lines are short; anything longer is an error of the server.
MAX_REPLY_BYTES = 1 << 20
# Latencies are handed to the histogram in batches of this many, to keep the hot path short.
FLUSH_SAMPLES = 4096
# How many mismatched replies are kept to show the reader.
KEPT_ERRORS = 5


class BenchError(Exception):
    """The server did not behave as the scenario expects (refused, full, closed early)."""


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
        error = BenchError(f"the server closed the connection ({exc or 'end of stream'})")
        if self._sent_at or self._tally.sending:
            # A connection lost under load ends the run: its figures would be wrong.
            self._tally.error(str(error))
            self._tally.finish()
        for future in (self.ready, self.drained):
            if not future.done():
                future.set_exception(error)

    def _greeting(self, lines: Sequence[bytes | LineTooLong]) -> Sequence[bytes | LineTooLong]:
        """Skip the greeting block; return the lines after it."""
        for position, line in enumerate(lines):
            if line == SERVER_FULL.encode():
                self.ready.set_exception(BenchError("the server is full"))
                self._in_greeting = False
                return []
            if line == END_OF_BLOCK.encode():
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
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

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
        while not self._lines:
            if self._ended:
                raise BenchError("the server closed the connection")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        line = self._lines.popleft()
        if type(line) is not bytes:
            raise BenchError("the server sent an over-long line")
        return line

    async def read_block(self) -> list[bytes]:
        """The lines of a multi-line reply, up to and without its end marker."""
        lines: list[bytes] = []
        end = END_OF_BLOCK.encode()
        while (line := await self.read_line()) != end:
            lines.append(line)
        return lines

    async def greeting(self) -> bytes:
        """Read the greeting block; returns its first line, or raises if the server is full."""
        first = await self.read_line()
        if first == SERVER_FULL.encode():
            raise BenchError("the server is full")
        if not first.startswith(GREETING_PREFIX.encode()):
            raise BenchError(f"unexpected greeting {first!r}")
        while await self.read_line() != END_OF_BLOCK.encode():
            pass
        return first

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
