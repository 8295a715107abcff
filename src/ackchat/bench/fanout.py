"""The fanout scenario's connections: one sender and many receivers in one room.

Both are lean Protocols like :class:`ackchat.bench.client.EchoConnection`: past the
greeting they send ``/join <room>`` and skip its reply block, then run their part. The
sender keeps ``pipeline`` numbered ``/say`` messages in flight (optionally at a bounded
rate) and checks each ACK; a receiver checks that the numbers arrive complete and in
order, and times each from the ``time.monotonic_ns()`` the sender embedded: Linux's
monotonic clock is one clock for every process of the machine.

The schedule of the sender (:class:`Pacer`) and the account a receiver keeps
(:class:`Arrivals`) know nothing of the wire: redis-server's PUBLISH and SUBSCRIBE
(:mod:`ackchat.bench.pubsub`) use them too, so that both servers' figures mean the same.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, cast

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


class FanoutConnection(asyncio.Protocol):
    """A fanout connection, to either server: its socket, and ``ready`` once it is set up.

    Set up means in the room (ackchat) or past the first answer (redis-server's PING or
    SUBSCRIBE); the future fails with why not.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()

    @property
    def set_up(self) -> bool:
        """Whether it got ready (not failed, nor given up on when it did not answer)."""
        ready = self.ready
        return ready.done() and not ready.cancelled() and ready.exception() is None

    def _send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)


class RoomConnection(FanoutConnection):
    """A connection that skips the greeting, joins a room, then hands lines to ``live``."""

    def __init__(self, tally: Tally, room: bytes) -> None:
        super().__init__()
        self._tally = tally
        self._room = room
        self._framer = LineFramer(MAX_REPLY_BYTES)
        self._phase = "first line"

    def close(self) -> None:
        """Say ``exit`` if in the room, then close the socket.

        A client that just vanishes is held for ``/resume`` (``--resume-grace``, 60 s by
        default), still in the room: the next run's messages would go to its buffer too,
        and the server would fan out to twice the receivers.
        """
        transport = self._transport
        if self.live_now and transport is not None and not transport.is_closing():
            self._write(b"exit")
        super().close()

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
        if not self.ready.done():
            self.ready.set_exception(error)

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
        self._send(line + b"\n")

    def _setup(self, lines: Sequence[bytes | LineTooLong]) -> Sequence[bytes | LineTooLong]:
        """Skip the greeting block, send ``/join``, skip its reply; return the lines after."""
        for position, line in enumerate(lines):
            if self._phase == "first line":
                error = first_line_error(line)
                if error is not None:
                    self.ready.set_exception(error)
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
                    self.ready.set_exception(BenchError(refused))
                    self._phase = "failed"
                elif line == END:
                    # The block held the room's recent messages: earlier runs, not ours.
                    self._phase = "live"
                    self.ready.set_result(None)
                    return lines[position + 1 :]
        return []


class Arrivals:
    """One receiver's account of the sender's messages: their order, their latency, the end.

    A connection hands it the texts of the messages it received, whatever the wire; each
    numbered message counts once for this receiver and is timed from the sender's clock
    to ``now``, so deliveries/s is messages x receivers.
    """

    __slots__ = ("_tally", "check", "done", "warnings")

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self.check = SequenceCheck()
        # Slow-reader warnings the server sent (ackchat's; redis-server has none).
        self.warnings = 0
        # Done when the final message came, or the connection was lost (a tally error):
        # never an exception, which nobody might retrieve when a run fails to set up.
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def take(self, texts: Sequence[bytes], now: int) -> None:
        """Account for the texts of messages that arrived at ``now`` (monotonic ns)."""
        tally = self._tally
        measuring = tally.measuring
        samples = tally.samples
        receive = self.check.receive
        delivered = 0
        for text in texts:
            message = parse_message(text)
            if message is None:
                self._other(text)
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

    def _other(self, text: bytes) -> None:
        """A text that is not a numbered message: the final one, or an error."""
        total = parse_end(text)
        if total is None:
            self._tally.error(f"unexpected message {text!r}")
            return
        self.check.finish(total)
        # The first receiver to hear the end closes its process's window.
        self._tally.finish()
        if not self.done.done():
            self.done.set_result(None)

    def lost(self, error: BenchError) -> None:
        """The receiver's connection is gone before the end: an error, and the end of it."""
        if not self.done.done():
            self._tally.error(str(error))
            self.done.set_result(None)


class Pacer:
    """A sender's schedule: ``pipeline`` messages in flight, at most ``rate`` a second.

    It sends while the tally's window is open (and fewer than ``limit`` messages went,
    if ``limit`` is set), then, once every reply is in, the final ``end <count>`` message.
    The connection writes each text with ``publish`` and reports the replies it matched
    to messages in flight with :meth:`answered`.
    """

    def __init__(
        self,
        tally: Tally,
        publish: Callable[[bytes], None],
        pipeline: int,
        rate: float,
        limit: int,
        size: int,
    ) -> None:
        self._tally = tally
        self._publish = publish
        self._pipeline = pipeline
        self._interval_ns = int(1e9 / rate) if rate > 0 else 0
        self._limit = limit
        self._size = size
        self._started_ns = 0
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._end_sent = False
        self.in_flight = 0
        self.sent = 0
        self.acked_in_window = 0
        # Why the run's figures mean nothing (redis: the wrong number of subscribers).
        self.failure: BenchError | None = None
        # Done when the final message is answered, or the connection was lost (an error
        # in the tally, as for :attr:`Arrivals.done`).
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        """Start sending (the tally's window must be open)."""
        self._started_ns = time.monotonic_ns()
        self._pump()

    def stop(self) -> asyncio.Future[None]:
        """Send no more messages; the future is done when the final one is answered."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        self._maybe_end()
        return self.finished

    def answered(self, replies: int) -> None:
        """``replies`` messages in flight were answered: send what may go now."""
        self.in_flight -= replies
        if self._tally.measuring:
            self.acked_in_window += replies
        if self._end_sent:
            if not self.in_flight and not self.finished.done():
                self.finished.set_result(None)
            return
        self._pump()
        self._maybe_end()

    def abort(self, failure: BenchError) -> None:
        """Give up on the run: send no more messages but the final one, so receivers end.

        The scenario raises ``failure`` (the first given) once the receivers are done.
        """
        if self.failure is None:
            self.failure = failure
        self._tally.finish()
        self.stop()

    def lost(self, error: BenchError) -> None:
        """The sender's connection is gone: an error, and the end of sending."""
        if self._timer is not None:
            self._timer.cancel()
        if not self.finished.done():
            self._tally.error(str(error))
            self._tally.finish()
            self.finished.set_result(None)

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
            and self.in_flight < self._pipeline
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
            self._emit(message_text(self.sent, now, self._size))
            self.sent += 1

    def _maybe_end(self) -> None:
        """Send the final message once sending is over and every reply is in."""
        done_sending = self._stopping or (self._limit and self.sent >= self._limit)
        if done_sending and not self.in_flight and not self._end_sent:
            self._end_sent = True
            self._emit(end_text(self.sent))

    def _emit(self, text: bytes) -> None:
        self.in_flight += 1
        self._publish(text)


class Sender(Protocol):
    """What the fanout scenario needs of its sender, whichever server it talks to."""

    @property
    def pacer(self) -> Pacer:
        """Its schedule, counts and end."""

    def close(self) -> None:
        """Close the socket."""


class Receiver(Protocol):
    """What the fanout scenario needs of a receiver, whichever server it talks to."""

    @property
    def arrivals(self) -> Arrivals:
        """What it received."""

    def close(self) -> None:
        """Close the socket."""


class FanoutReceiver(RoomConnection):
    """A room member: checks the order of the sender's messages and times each one."""

    def __init__(self, tally: Tally, room: bytes) -> None:
        super().__init__(tally, room)
        self.arrivals = Arrivals(tally)

    def live(self, lines: Sequence[bytes | LineTooLong]) -> None:
        now = time.monotonic_ns()
        texts = []
        for line in lines:
            event = parse_event(line) if type(line) is bytes else None
            if event is None:
                if type(line) is bytes and line.startswith(WARNING):
                    self.arrivals.warnings += 1
                else:
                    self._tally.error(f"unexpected line {line!r}")
            elif event.sender != PRESENCE:
                if event.scope == self._room:
                    texts.append(event.text)
                else:
                    self._tally.error(f"unexpected event {event.scope!r} {event.text!r}")
        self.arrivals.take(texts, now)

    def lost(self, error: BenchError) -> None:
        super().lost(error)
        if self.live_now:
            self.arrivals.lost(error)


class FanoutSender(RoomConnection):
    """The room's sender: ``/say`` each message of its :class:`Pacer`, check each ACK."""

    def __init__(
        self, tally: Tally, room: bytes, pipeline: int, rate: float, limit: int, size: int
    ) -> None:
        super().__init__(tally, room)
        self._in_flight: deque[bytes] = deque()
        self.pacer = Pacer(tally, self._say, pipeline, rate, limit, size)

    def live(self, lines: Sequence[bytes | LineTooLong]) -> None:
        tally = self._tally
        in_flight = self._in_flight
        answered = 0
        for line in lines:
            if type(line) is bytes and (line.startswith(b"@") or line.startswith(WARNING)):
                continue
            if not in_flight:
                tally.error(f"unexpected line {line!r}")
                continue
            expected = in_flight.popleft()
            if line != expected:
                tally.error(f"expected {expected!r}, got {line!r}")
            answered += 1
        self.pacer.answered(answered)

    def lost(self, error: BenchError) -> None:
        super().lost(error)
        if self.live_now:
            self.pacer.lost(error)

    def _say(self, text: bytes) -> None:
        line = b"/say " + self._room + b" " + text
        self._in_flight.append(line + ACK)
        self._write(line)
