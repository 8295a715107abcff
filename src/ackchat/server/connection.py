"""One client connection: bytes from the transport through the protocol core and back.

This is plumbing. The framer turns bytes into lines, the parser turns lines into
commands, the registry names the client and records its session, and the replies
module formats every answer. Here we only decide what to do with each command, write
the answers (one write per read, so pipelined lines cost one syscall), and apply the
limits that involve time and buffers: timeouts, the rate limit and the output cap.

A connection goes through up to three stages: the address policy (refused, or let in),
authentication when the server has a password, then the named session.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, cast

from ackchat.admission import peer_address
from ackchat.chat.dispatch import answer as chat_answer
from ackchat.protocol import replies
from ackchat.protocol.commands import (
    Command,
    CommandUsageError,
    Exit,
    Help,
    InvalidUtf8Error,
    Message,
    Status,
    is_exit,
    parse_auth,
    parse_command,
)
from ackchat.protocol.framing import LineFramer, LineTooLong
from ackchat.protocol.replies import plain_acks
from ackchat.ratelimit import TokenBucket
from ackchat.registry import DisconnectReason, SessionRecord

if TYPE_CHECKING:
    from ackchat.server.listener import ChatServer

log = logging.getLogger("ackchat.server")

# The clock for rates and timeouts: the same on both event loops, to the nanosecond
# (uvloop's loop.time() is libuv's cached loop time, to the millisecond).
monotonic = time.monotonic

# A long reply (``status all``) is written this many lines (about 0.15 ms of work) at a
# time; between pieces other connections get their turn, and the client's reading sets
# the pace once its write buffer passes the high mark. With ten clients asking for
# 10,000-line replies in a loop, others' echo p99 was 15.9 ms with 256-line pieces and
# 2.2-3.8 ms with 64 (docs/BENCHMARKS.md).
STREAM_CHUNK_LINES = 64

Lines = Iterator[bytes | LineTooLong]
_NO_LINES: Lines = iter(())

# A session that ended for one of these reasons may come back with /resume.
HELD_REASONS = frozenset(
    {
        DisconnectReason.CLOSED_BY_PEER,
        DisconnectReason.RESET,
        DisconnectReason.CONNECTION_ERROR,
    }
)


def format_address(peername: object) -> str:
    """``host:port`` for IPv4, ``[host]:port`` for IPv6, ``unknown`` otherwise."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        return replies.host_port(str(peername[0]), peername[1])
    return "unknown"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address on this machine's loopback interface."""
    if host == "localhost":
        return True
    address = peer_address(host)
    return address is not None and address.is_loopback


class ClientConnection(asyncio.Protocol):
    """The server side of one TCP connection, from accept to close."""

    # Slots: a connection's state is read on every line, and slots are the fastest
    # attributes to read and the smallest to keep.
    __slots__ = (
        "_address",
        "_auth_timer",
        "_authenticating",
        "_closing",
        "_counted_by_policy",
        "_framer",
        "_held_lines",
        "_host",
        "_idle_timer",
        "_last_input",
        "_line_started",
        "_line_timeout",
        "_line_timer",
        "_loop",
        "_outbox",
        "_outbox_bytes",
        "_rate",
        "_rate_strikes",
        "_record",
        "_server",
        "_session_ended",
        "_settings",
        "_stream",
        "_stream_scheduled",
        "_suspended",
        "_transport",
        "_warned_slow",
        "_writing_paused",
        "_wrong_passwords",
    )

    def __init__(self, server: ChatServer, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._settings = settings = server.settings
        self._loop = loop
        self._framer = LineFramer(settings.max_line_bytes)
        self._line_timeout = settings.line_timeout > 0
        self._transport: asyncio.Transport | None = None
        self._host = ""
        self._address = "unknown"
        self._counted_by_policy = False
        self._record: SessionRecord | None = None
        self._session_ended = False
        self._closing = False
        self._writing_paused = False
        self._authenticating = False
        self._wrong_passwords = 0
        # Lines read but not yet handled, while a long reply is written or a wrong
        # password's delay runs; reading is paused meanwhile.
        self._suspended = False
        self._held_lines: Lines = _NO_LINES
        self._stream: Iterator[str] | None = None
        self._stream_scheduled = False
        self._warned_slow = False
        self._rate: TokenBucket | None = None
        self._rate_strikes = 0
        self._last_input = 0.0
        self._line_started: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._line_timer: asyncio.TimerHandle | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        # Chat lines waiting for the client to read, while its write buffer is full or a
        # long reply is being written: bounded by the queue settings, made when first needed.
        self._outbox: deque[bytes] | None = None
        self._outbox_bytes = 0

    @property
    def name(self) -> str | None:
        """The client's name, or None if it was never admitted."""
        return self._record.name if self._record else None

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's transport (None before it is made)."""
        return self._transport

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        self._server.opened(self)
        peername = transport.get_extra_info("peername")
        self._host = str(peername[0]) if isinstance(peername, tuple) else ""
        self._address = format_address(peername)
        now = monotonic()
        refusal = self._server.admission.check(self._host, now)
        if refusal is not None:
            self._server.count_refusal(refusal)
            log.debug("refused %s: %s", self._address, refusal)
            self._closing = True
            transport.write(replies.refused(refusal))
            self._close_gracefully()
            return
        self._counted_by_policy = True
        transport.set_write_buffer_limits(high=self._server.write_high_water)
        self._last_input = now
        if self._settings.rate_limit > 0:
            self._rate = TokenBucket(self._settings.rate_limit, self._settings.rate_burst, now)
        if self._settings.idle_timeout > 0:
            self._idle_timer = self._loop.call_later(self._settings.idle_timeout, self._check_idle)
        if self._server.password is not None:
            self._authenticating = True
            transport.write(replies.line(replies.AUTH_REQUIRED))
            if self._settings.auth_timeout > 0:
                self._auth_timer = self._loop.call_later(
                    self._settings.auth_timeout, self._auth_timed_out
                )
            return
        self._join()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        now = self._last_input = monotonic()
        lines = self._framer.feed(data)
        # Data that ends with a newline leaves no line unfinished: no timer to look at.
        if self._line_timeout and (self._line_started is not None or data[-1:] != b"\n"):
            self._watch_line_start(now, bool(lines))
        if not lines:
            return
        rate = self._rate
        if rate is not None and self._rate_strikes and rate.full(now):
            self._rate_strikes = 0
        if self._record is not None and self._stream is None:
            # The hot path: a batch of ordinary lines within the rate gets one write.
            acks = plain_acks(lines)
            if acks is not None and (rate is None or rate.take(now, len(lines))):
                self._transport.write(acks)  # type: ignore[union-attr]
                if self._writing_paused:
                    self._enforce_output_cap()
                return
        self._handle(iter(lines))

    def eof_received(self) -> bool:
        # Returning False lets the transport close; connection_lost records the reason.
        return False

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._stream is not None:
            self._schedule_stream()
        elif self._outbox and not self._closing:
            self._flush_outbox()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        # A session ended by the server (exit, a limit) has its reason and its timers
        # stopped already.
        if not self._session_ended:
            if isinstance(exc, ConnectionResetError):
                reason = DisconnectReason.RESET
            elif exc is not None:
                reason = DisconnectReason.CONNECTION_ERROR
            else:
                reason = DisconnectReason.CLOSED_BY_PEER
            self._end_session(reason)
        self._stream = None
        if self._counted_by_policy:
            self._server.admission.closed(self._host)
        self._server.closed(self)

    # Handling lines

    def _handle(self, lines: Lines) -> None:
        """Answer each line in order, writing all the answers at once."""
        out: list[bytes] = []
        for line in lines:
            if self._rate is not None and not self._rate.take(self._last_input):
                if self._over_rate_limit(out):
                    return
                continue
            if type(line) is not bytes:
                out.append(replies.line_too_long(cast(LineTooLong, line)))
                continue
            if self._authenticating:
                if self._authenticate(line, out, lines):
                    return
                continue
            try:
                command = parse_command(line)
            except InvalidUtf8Error:
                out.append(replies.line(replies.INVALID_UTF8))
                continue
            except CommandUsageError as problem:
                out.append(replies.error(str(problem)))
                continue
            if type(command) is Message:
                out.append(replies.ack(command.text))
            elif type(command) is Status:
                self._write(out)
                self._start_stream(self._status_lines(command.show_all), lines)
                return
            elif type(command) is Exit:
                assert self._record is not None
                out.append(replies.goodbye(self._record.name))
                self._write(out)
                self.close(DisconnectReason.EXIT)
                return
            else:
                out.append(self._answer(command, line))
                if self._closing:
                    return
        self._write(out)

    def _answer(self, command: Command, line: bytes) -> bytes:
        """The reply to ``help`` or a chat command, keeping the registry's name current."""
        if type(command) is Help:
            return replies.help_reply()
        assert self._record is not None
        old_name = self._record.name
        done = chat_answer(self._server.hub, old_name, command, line, self, time.time())
        if done.new_name is not None:
            self._record = self._server.registry.rename(old_name, done.new_name)
            log.debug("%s is now %s", old_name, done.new_name)
        return done.reply

    def _over_rate_limit(self, out: list[bytes]) -> bool:
        """Refuse a line over the rate limit; True if the client is now disconnected."""
        self._rate_strikes += 1
        if self._rate_strikes < self._settings.rate_strikes:
            out.append(replies.rate_limited(self._settings.rate_limit))
            return False
        log.warning("%s keeps exceeding the rate limit", self.name or self._address)
        self._write(out)
        self.close(DisconnectReason.RATE_LIMITED, replies.line(replies.RATE_LIMITED_GOODBYE))
        return True

    def _status_lines(self, show_all: bool) -> Iterator[str]:
        recent = None if show_all else self._settings.status_recent
        visibility = self._settings.show_addresses
        show_addresses = visibility == "all" or (
            visibility == "loopback" and is_loopback(self._host)
        )
        return replies.status_lines(
            self._server.registry.snapshot(recent),
            show_addresses,
            self._server.refused,
            self._server.chat_losses,
        )

    def _write(self, chunks: list[bytes]) -> None:
        """Write answers, and drop the client if its unsent output passes the cap."""
        if not chunks:
            return
        assert self._transport is not None
        self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self._writing_paused:
            self._enforce_output_cap()

    def _enforce_output_cap(self) -> None:
        """Drop the client if its unsent output passes the cap.

        Only worth asking once writing is paused: below the high-water mark (at most a
        quarter of the cap) the transport does not pause.
        """
        assert self._transport is not None
        if self._transport.get_write_buffer_size() > self._settings.max_output_bytes:
            log.warning(
                "%s is not reading its replies: over %d bytes unsent",
                self.name,
                self._settings.max_output_bytes,
            )
            self.abort(DisconnectReason.SLOW_CONSUMER)

    # Chat delivery

    def deliver(self, data: bytes) -> None:
        """Send a chat line now, or queue it while the client cannot take it.

        The queue is bounded in messages (``queue_limit``) and in bytes
        (``max_output_bytes``); past either, the client is cut off as a slow consumer.
        """
        if self._closing:
            self._server.count_chat("messages dropped")
            return
        outbox = self._outbox
        if not outbox and self._stream is None and not self._writing_paused:
            assert self._transport is not None
            self._transport.write(data)
            return
        if outbox is None:
            outbox = self._outbox = deque()
        outbox.append(data)
        self._outbox_bytes += len(data)
        queued = len(outbox)
        settings = self._settings
        if queued >= settings.queue_limit or self._outbox_bytes > settings.max_output_bytes:
            outbox.clear()
            self._outbox_bytes = 0
            self._server.count_chat("slow readers disconnected")
            self._server.count_chat("messages dropped", queued)
            log.warning("%s reads too slowly: %d messages queued", self.name, queued)
            # Not now: the hub is in the middle of a delivery loop that this would change.
            self._closing = True
            self._loop.call_soon(self.abort, DisconnectReason.SLOW_CONSUMER)
        elif queued >= settings.queue_warn and not self._warned_slow:
            # First in the queue, so that the client reads it before what waits behind it.
            self._warned_slow = True
            outbox.appendleft(replies.slow_reader_warning(queued, settings.queue_limit))

    def _flush_outbox(self) -> None:
        """Write queued chat lines while the client's write buffer has room."""
        assert self._transport is not None
        outbox = self._outbox
        while outbox and not self._writing_paused and not self._closing:
            data = outbox.popleft()
            self._outbox_bytes -= len(data)
            self._transport.write(data)
        if not outbox:
            self._warned_slow = False

    # Joining: authentication and admission

    def _authenticate(self, line: bytes, out: list[bytes], rest: Lines) -> bool:
        """Handle a line sent before authentication; True if handling must stop here."""
        password = parse_auth(line)
        if password is None:
            if is_exit(line):
                out.append(replies.line("Goodbye."))
                self._write(out)
                self.close(DisconnectReason.EXIT)
                return True
            out.append(replies.line(replies.AUTH_FIRST))
            return False
        expected = self._server.password
        assert expected is not None
        if hmac.compare_digest(password, expected):
            self._authenticating = False
            if self._auth_timer is not None:
                self._auth_timer.cancel()
                self._auth_timer = None
            self._write(out)
            out.clear()
            self._join()
            return self._closing
        self._wrong_passwords += 1
        self._server.count_refusal("wrong passwords")
        log.info("wrong password from %s", self._address)
        self._write(out)
        if self._wrong_passwords >= self._settings.auth_attempts:
            self._disconnect_unnamed(replies.line(replies.TOO_MANY_WRONG_PASSWORDS))
            return True
        answer = replies.wrong_password(self._wrong_passwords, self._settings.auth_attempts)
        self._suspend(rest)
        self._loop.call_later(
            self._settings.auth_delay * self._wrong_passwords, self._answer_later, answer
        )
        return True

    def _answer_later(self, answer: bytes) -> None:
        if self._closing:
            return
        self._write([answer])
        self._resume()

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self._authenticating:
            log.info("%s did not authenticate in time", self._address)
            self._disconnect_unnamed(replies.line(replies.AUTH_TIMEOUT))

    def _disconnect_unnamed(self, farewell: bytes) -> None:
        """Close a connection that never got a name (it has no session to record)."""
        assert self._transport is not None
        self._closing = True
        self._cancel_timers()
        self._transport.write(farewell)
        self._close_gracefully()

    def _join(self) -> None:
        """Name the client and greet it, or tell it the server is full."""
        assert self._transport is not None
        record = self._server.registry.admit(self._address, time.time())
        if record is None:
            log.debug(
                "rejected %s: server full (%d clients)",
                self._address,
                self._server.registry.max_clients,
            )
            self._disconnect_unnamed(replies.line(replies.SERVER_FULL))
            return
        self._record = record
        log.debug("%s connected from %s", record.name, self._address)
        token = self._server.hub.attach(record.name, self)
        resume_token = token if self._settings.resume_grace > 0 else None
        self._transport.write(replies.greeting(record.name, resume_token))

    # Pausing: long replies and delayed answers

    def _suspend(self, rest: Lines) -> None:
        """Hold the lines not yet handled, and stop reading until :meth:`_resume`."""
        assert self._transport is not None
        self._suspended = True
        self._held_lines = rest
        if self._transport.is_reading():
            self._transport.pause_reading()

    def _resume(self) -> None:
        """Handle the held lines, then read again unless they suspended us anew."""
        assert self._transport is not None
        self._suspended = False
        held, self._held_lines = self._held_lines, _NO_LINES
        self._handle(held)
        if not self._suspended and not self._closing:
            self._transport.resume_reading()

    def _start_stream(self, reply: Iterator[str], rest: Lines) -> None:
        """Begin a long reply; the lines after it wait until it is sent."""
        self._stream = reply
        self._suspend(rest)
        self._continue_stream()

    def _continue_stream(self) -> None:
        """Write the next piece of the long reply, then let other clients have a turn.

        Not subject to the output cap: this output waits for the reader (a full write
        buffer pauses it until ``resume_writing``), so it never piles up.
        """
        self._stream_scheduled = False
        if self._stream is None or self._closing or self._writing_paused:
            return
        assert self._transport is not None
        chunk = list(islice(self._stream, STREAM_CHUNK_LINES))
        if chunk:
            self._transport.write(replies.encode_lines(chunk))
            self._schedule_stream()
            return
        self._stream = None
        self._flush_outbox()
        self._resume()

    def _schedule_stream(self) -> None:
        if not self._stream_scheduled:
            self._stream_scheduled = True
            self._loop.call_soon(self._continue_stream)

    # Timers

    def _check_idle(self) -> None:
        timeout = self._settings.idle_timeout
        remaining = self._last_input + timeout - monotonic()
        if remaining > 0:
            self._idle_timer = self._loop.call_later(remaining, self._check_idle)
            return
        self._idle_timer = None
        log.info(
            "%s disconnected: no input for %g seconds (idle timeout)",
            self.name or self._address,
            timeout,
        )
        self._time_out(DisconnectReason.IDLE_TIMEOUT, replies.idle_timeout(timeout))

    def _watch_line_start(self, now: float, lines_ended: bool) -> None:
        """Note when the current unfinished line began, and arm the line timer for it."""
        if not self._framer.in_line:
            self._line_started = None
            return
        if self._line_started is None or lines_ended:
            self._line_started = now
        if self._line_timer is None:
            self._line_timer = self._loop.call_later(self._settings.line_timeout, self._check_line)

    def _check_line(self) -> None:
        self._line_timer = None
        if self._line_started is None:
            return
        timeout = self._settings.line_timeout
        remaining = self._line_started + timeout - monotonic()
        if remaining > 0 or self._suspended:
            self._line_timer = self._loop.call_later(max(remaining, 0.1), self._check_line)
            return
        log.info(
            "%s disconnected: a line took over %g seconds (line timeout)",
            self.name or self._address,
            timeout,
        )
        self._time_out(DisconnectReason.LINE_TIMEOUT, replies.line_timeout(timeout))

    def _time_out(self, reason: DisconnectReason, farewell: bytes) -> None:
        if self._record is None:
            self._disconnect_unnamed(farewell)
        else:
            self.close(reason, farewell)

    def _cancel_timers(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._line_timer is not None:
            self._line_timer.cancel()
            self._line_timer = None
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None

    # Ending the session

    def close(self, reason: DisconnectReason, farewell: bytes = b"") -> None:
        """End the session for ``reason``: send ``farewell``, then close gracefully.

        The slot is freed at once; the socket closes as :meth:`_close_gracefully` says.
        """
        if self._closing:
            return
        assert self._transport is not None
        self._closing = True
        if farewell:
            self._transport.write(farewell)
        self._end_session(reason)
        self._close_gracefully()

    def _close_gracefully(self) -> None:
        """Send FIN after the unsent bytes, and read and drop input until the peer's FIN.

        Closing a socket with unread input would send a RST, which can destroy the
        farewell before the client reads it. The server aborts connections that linger
        longer than the shutdown timeout.
        """
        transport = self._transport
        assert transport is not None
        if not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:
            transport.abort()
            return
        if not transport.is_reading():
            transport.resume_reading()
        self._server.linger(self)

    def abort(self, reason: DisconnectReason) -> None:
        """End the session for ``reason`` now, dropping whatever was not yet sent."""
        assert self._transport is not None
        self._closing = True
        self._end_session(reason)
        self._transport.abort()

    def _end_session(self, reason: DisconnectReason) -> None:
        """Record the departure once, with the first reason that applies, and stop timers."""
        self._cancel_timers()
        if self._record is None or self._session_ended:
            return
        self._session_ended = True
        now = time.time()
        self._server.hub.detach(self._record.name, now, hold=reason in HELD_REASONS)
        self._server.registry.depart(self._record.name, reason, now)
        log.debug("%s disconnected (%s)", self._record.name, reason)
