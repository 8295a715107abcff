"""The fanout scenario's connections: one sender and many receivers in one room.

Both are lean Protocols like :class:`ackchat.bench.client.EchoConnection`: past the
greeting they send ``/join <room>`` and skip its reply block, then run their part. The
sender keeps ``pipeline`` numbered ``/say`` messages in flight (optionally at a bounded
rate) and checks each ACK; a receiver checks that the numbers arrive complete and in
order, and times each from the ``time.monotonic_ns()`` the sender embedded: Linux's
monotonic clock is one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from typing import cast

from ackchat.bench.chatlines import (
    PRESENCE,
    SequenceCheck,
    end_text,
    message_text,
    parse_end,
    parse_event,
    parse_message,
)
from ackchat.bench.client import (
    CLOSED_BEFORE_GREETING,
    END,
    FLUSH_SAMPLES,
    MAX_REPLY_BYTES,
    BenchError,
    Tally,
    closed_early,
    first_line_error,
)
from ackchat.client.errors import EXIT_SERVER_CLOSED
from ackchat.protocol.framing import LineFramer, LineTooLong
from ackchat.protocol.replies import ERROR_PREFIX

ACK = b" ACK"
WARNING = b"WARNING "
ERROR = ERROR_PREFIX.encode()


class RoomConnection(asyncio.Protocol):
    """A connection that skips the greeting, joins a room, then hands lines to ``live``."""

    def __init__(self, tally: Tally, room: bytes) -> None:
        self._tally = tally
        self._room = room
        self._framer = LineFramer(MAX_REPLY_BYTES)
        self._phase = "first line"
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.joined: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        lines = self._framer.feed(data)
        if self._phase != "live":
            lines = self._setup(lines)
        if lines:
            self.live(lines)

    def live(self, lines: Sequence[bytes | LineTooLong]) -> None:
        """Handle lines that arrived after the join reply."""
        raise NotImplementedError

    def lost(self, error: BenchError) -> None:
        """The connection is gone: fail whatever waits on it."""
        if not self.joined.done():
            self.joined.set_exception(error)

    @property
    def live_now(self) -> bool:
        """Whether it joined the room: only then does anything wait on its later futures."""
        return self._phase == "live"

    def connection_lost(self, exc: Exception | None) -> None:
        if self._phase in ("first line", "greeting"):
            self.lost(BenchError(CLOSED_BEFORE_GREETING, EXIT_SERVER_CLOSED))
        else:
            self.lost(BenchError(closed_early(exc)))

    def _write(self, line: bytes) -> None:
        assert self._transport is not None
        self._transport.write(line + b"\n")

    def _setup(self, lines: Sequence[bytes | LineTooLong]) -> Sequence[bytes | LineTooLong]:
        """Skip the greeting block, send ``/join``, skip its reply; return the lines after."""
        for position, line in enumerate(lines):
            if self._phase == "first line":
                error = first_line_error(line)
                if error is not None:
                    self.joined.set_exception(error)
                    self._phase = "failed"
                    return []
                self._phase = "greeting"
            elif self._phase == "greeting":
                if line == END:
                    self._phase = "joining"
                    self._write(b"/join " + self._room)
            elif self._phase == "joining":
                if type(line) is bytes and line.startswith(ERROR):
                    reason = line.removeprefix(ERROR).decode(errors="replace")
                    refused = f"the server refused /join {self._room.decode()}: {reason}"
                    self.joined.set_exception(BenchError(refused))
                    self._phase = "failed"
                elif line == END:
                    # The block held the room's recent messages: earlier runs, not ours.
                    self._phase = "live"
                    self.joined.set_result(None)
                    return lines[position + 1 :]
        return []


class FanoutReceiver(RoomConnection):
    """A room member: checks the order of the sender's messages and times each one."""

    def __init__(self, tally: Tally, room: bytes) -> None:
        super().__init__(tally, room)
        self.check = SequenceCheck()
        self.warnings = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def live(self, lines: Sequence[bytes | LineTooLong]) -> None:
        now = time.monotonic_ns()
        tally = self._tally
        measuring = tally.measuring
        samples = tally.samples
        receive = self.check.receive
        delivered = 0
        for line in lines:
            event = parse_event(line) if type(line) is bytes else None
            if event is None:
                if type(line) is bytes and line.startswith(WARNING):
                    self.warnings += 1
                else:
                    tally.error(f"unexpected line {line!r}")
                continue
            if event.sender == PRESENCE:
                continue
            message = parse_message(event.text)
            if message is None or event.scope != self._room:
                self._other(event.text, event.scope)
                continue
            number, sent = message
            receive(number)
            if measuring:
                delivered += 1
                samples.append((now - sent) // 1000)
        if delivered:
            tally.replies += delivered
            if len(samples) >= FLUSH_SAMPLES:
                tally.flush()

    def _other(self, text: bytes, scope: bytes) -> None:
        """An event that is not a numbered message: the final one, or an error."""
        total = parse_end(text)
        if total is None or scope != self._room:
            self._tally.error(f"unexpected event {scope!r} {text!r}")
            return
        self.check.finish(total)
        # The first receiver to hear the end closes its process's window.
        self._tally.finish()
        if not self.done.done():
            self.done.set_result(None)

    def lost(self, error: BenchError) -> None:
        super().lost(error)
        if self.live_now and not self.done.done():
            self._tally.error(str(error))
            self.done.set_exception(error)


class FanoutSender(RoomConnection):
    """The room's sender: ``pipeline`` messages in flight, at most ``rate`` a second.

    It sends while the tally's window is open (and fewer than ``limit`` messages went,
    if ``limit`` is set), then, once every ACK is in, the final ``end <count>`` message.
    """

    def __init__(self, tally: Tally, room: bytes, pipeline: int, rate: float, limit: int) -> None:
        super().__init__(tally, room)
        self._pipeline = pipeline
        self._interval_ns = int(1e9 / rate) if rate > 0 else 0
        self._limit = limit
        self._in_flight: deque[bytes] = deque()
        self._started_ns = 0
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._end_sent = False
        self.sent = 0
        self.acked_in_window = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        """Start sending (the tally's window must be open)."""
        self._started_ns = time.monotonic_ns()
        self._pump()

    def stop(self) -> asyncio.Future[None]:
        """Send no more messages; the future is done when the final one is acknowledged."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        self._maybe_end()
        return self.finished

    def live(self, lines: Sequence[bytes | LineTooLong]) -> None:
        tally = self._tally
        for line in lines:
            if type(line) is bytes and (line.startswith(b"@") or line.startswith(WARNING)):
                continue
            if not self._in_flight:
                tally.error(f"unexpected line {line!r}")
                continue
            expected = self._in_flight.popleft()
            if line != expected:
                tally.error(f"expected {expected!r}, got {line!r}")
            if tally.measuring:
                self.acked_in_window += 1
        if self._end_sent:
            if not self._in_flight and not self.finished.done():
                self.finished.set_result(None)
            return
        self._pump()
        self._maybe_end()

    def lost(self, error: BenchError) -> None:
        super().lost(error)
        if self._timer is not None:
            self._timer.cancel()
        if self.live_now and not self.finished.done():
            self._tally.error(str(error))
            self._tally.finish()
            self.finished.set_exception(error)

    def _tick(self) -> None:
        """The rate's next message is due."""
        self._timer = None
        self._pump()

    def _pump(self) -> None:
        """Send messages while the window, the limit, the pipeline and the rate allow."""
        if self._timer is not None:
            return
        while (
            self._tally.sending
            and not self._stopping
            and len(self._in_flight) < self._pipeline
            and (not self._limit or self.sent < self._limit)
        ):
            now = time.monotonic_ns()
            if self._interval_ns:
                due = self._started_ns + self.sent * self._interval_ns
                if now < due:
                    self._timer = asyncio.get_running_loop().call_later(
                        (due - now) / 1e9, self._tick
                    )
                    return
            self._say(message_text(self.sent, now))
            self.sent += 1

    def _maybe_end(self) -> None:
        """Send the final message once sending is over and every ACK is in."""
        done_sending = self._stopping or (self._limit and self.sent >= self._limit)
        if done_sending and not self._in_flight and not self._end_sent:
            self._end_sent = True
            self._say(end_text(self.sent))

    def _say(self, text: bytes) -> None:
        line = b"/say " + self._room + b" " + text
        self._in_flight.append(line + ACK)
        self._write(line)
