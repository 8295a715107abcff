"""One client's session on the server, without I/O: events in, actions out.

The connection adapter (connection.py) feeds a :class:`ServerSession` what happens to
its socket (bytes received, the write buffer full or drained, the peer gone) and the
timers it asked for; the session answers through :class:`SessionIO` (write, pause or
resume reading, close, abort, set or cancel a timer). Time comes from the clock in the
:class:`SessionContext`, so every timeout is tested with a clock the test controls.

A session goes through up to three stages: the address policy (refused, or let in),
authentication when the server has a password, then the named session, in which the
framer turns bytes into lines, the parser lines into commands, the backend answers
the ones about shared state and the replies module formats every answer. Answers are
written once per read, so pipelined lines cost one write. A backend answer that comes
later parks the session: reading pauses, the lines after it wait, and they are handled
in order once it is settled.
"""

from __future__ import annotations

import hmac
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import islice
from typing import Protocol, TypeVar, cast

from ackchat.admission import AddressPolicy, Refusal, is_loopback
from ackchat.backend.interface import Admitted, Backend, BackendUnavailableError
from ackchat.backend.pending import Pending
from ackchat.chat.dispatch import Answer
from ackchat.chat.dispatch import answer as chat_answer
from ackchat.protocol import replies
from ackchat.protocol.commands import (
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
from ackchat.records import ChatLoss, DisconnectReason, StatusSnapshot
from ackchat.server.stats import COMMAND_NAMES, LatencyHistogram, Traffic
from ackchat.settings import ServerSettings

log = logging.getLogger("ackchat.server")

_T = TypeVar("_T")

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
        DisconnectReason.DRAINED,
    }
)
# How a connection can end without the session ending it; after a drain notice each
# of them is recorded as DRAINED instead (the client was told to go).
_LOST_REASONS = frozenset(
    {
        DisconnectReason.CLOSED_BY_PEER,
        DisconnectReason.RESET,
        DisconnectReason.CONNECTION_ERROR,
        DisconnectReason.SERVER_SHUTDOWN,
    }
)


class Timer(Enum):
    """The timers a session asks its connection for; each is set at most once at a time."""

    IDLE = "idle"  # no input for idle_timeout
    LINE = "line"  # a started line not ended within line_timeout
    AUTH = "auth"  # not authenticated within auth_timeout
    ANSWER = "answer"  # the delayed answer to a wrong password
    NEXT_PIECE = "next piece"  # the next piece of a long reply (delay 0: the next turn)
    CUT_OFF = "cut off"  # a slow reader's disconnection, after the delivery loop (delay 0)
    LINGER = "linger"  # a closing connection whose peer has not closed its end


class SessionIO(Protocol):
    """What a session asks of its connection."""

    def write(self, data: bytes) -> None:
        """Send ``data`` after what was sent before."""

    def write_buffer_size(self) -> int:
        """Bytes written but not yet sent."""

    def pause_reading(self) -> None:
        """Stop reading (the input waits in the kernel)."""

    def resume_reading(self) -> None:
        """Read again."""

    def close(self) -> None:
        """Send FIN after the unsent bytes and drop input until the peer's FIN (no RST)."""

    def abort(self) -> None:
        """Close now, dropping unsent bytes."""

    def set_timer(self, timer: Timer, delay: float) -> None:
        """Call :meth:`ServerSession.timer_due` with ``timer`` after ``delay`` seconds."""

    def cancel_timer(self, timer: Timer) -> None:
        """Forget ``timer`` if it is set."""

    def flush_soon(self) -> None:
        """Call :meth:`ServerSession.flush_deliveries` once this loop iteration is over."""


@dataclass(slots=True)
class ServerCounters:
    """What this server counts beside the backend's state: for the ``status`` header, the
    admin API and ``/metrics``. Each count changes at most once per batch of lines, per
    command or per connection, never per plain line."""

    # Connections turned away before they got a name, by reason.
    refused: Counter[Refusal] = field(default_factory=Counter)
    # Chat deliveries that failed: slow readers cut off, messages dropped with them.
    chat_losses: Counter[ChatLoss] = field(default_factory=Counter)
    # Clients this server admitted (gave a name), and turned away because it was full.
    admitted: int = 0
    full: int = 0
    # Sessions of this server that ended, by reason.
    departures: Counter[DisconnectReason] = field(default_factory=Counter)
    # Chat messages this server's clients sent and the backend delivered, by scope.
    chat_messages: Counter[str] = field(default_factory=Counter)
    # The traffic of connections that are closed (open ones keep count of their own).
    closed_traffic: Traffic = field(default_factory=Traffic)
    # How long each command other than a plain line took to handle, by its word.
    command_latency: dict[str, LatencyHistogram] = field(
        default_factory=lambda: {word: LatencyHistogram() for word in COMMAND_NAMES.values()}
    )


@dataclass(slots=True)
class SessionContext:
    """What every session of one server shares: its settings, state and clock."""

    # The running settings: replaced (for new sessions; see ServerSession.reconfigure for
    # the connected ones) when a live setting changes on SIGHUP or through the admin API.
    settings: ServerSettings
    backend: Backend
    admission: AddressPolicy
    # The shared secret, or None when the server has no password.
    password: bytes | None
    counters: ServerCounters
    # A monotonic clock, for rates and timeouts.
    clock: Callable[[], float]


class ServerSession:
    """The server side of one client, from its connection to its departure."""

    # Slots: a session's state is read on every line, and slots are the fastest
    # attributes to read and the smallest to keep.
    __slots__ = (
        "_authenticating",
        "_backend",
        "_batch",
        "_bytes_in",
        "_bytes_out",
        "_clock",
        "_closing",
        "_context",
        "_counted_by_policy",
        "_delayed_answer",
        "_drain_notice",
        "_framer",
        "_held_lines",
        "_host",
        "_io",
        "_last_input",
        "_line_started",
        "_line_timeout",
        "_line_timer_set",
        "_lines_in",
        "_lines_out",
        "_name",
        "_outbox",
        "_outbox_bytes",
        "_rate",
        "_rate_strikes",
        "_reading_paused",
        "_session_ended",
        "_settings",
        "_stream",
        "_stream_scheduled",
        "_suspended",
        "_warned_slow",
        "_write",
        "_writing_paused",
        "_wrong_passwords",
        "address",
    )

    def __init__(self, context: SessionContext, io: SessionIO, host: str, address: str) -> None:
        self._context = context
        self._settings = settings = context.settings
        self._backend = context.backend
        self._clock = context.clock
        self._io = io
        # Bound once: the hot path writes through it.
        self._write = io.write
        self._host = host
        self.address = address
        self._framer = LineFramer(settings.max_line_bytes)
        self._line_timeout = settings.line_timeout > 0
        self._counted_by_policy = False
        self._name: str | None = None
        self._session_ended = False
        self._closing = False
        self._writing_paused = False
        self._reading_paused = False
        self._authenticating = False
        self._wrong_passwords = 0
        self._delayed_answer = b""
        # The drain notice this session was sent (None: the server is not draining).
        self._drain_notice: bytes | None = None
        # Lines read but not yet handled, while a long reply is written, a wrong
        # password's delay runs or the backend's answer is awaited; reading is paused.
        self._suspended = False
        self._held_lines: Lines = _NO_LINES
        self._stream: Iterator[str] | None = None
        self._stream_scheduled = False
        self._warned_slow = False
        self._rate: TokenBucket | None = None
        self._rate_strikes = 0
        self._last_input = 0.0
        self._line_started: float | None = None
        self._line_timer_set = False
        # Chat lines waiting for the client to read, while its write buffer is full or a
        # long reply is being written: bounded by the queue settings, made when first needed.
        self._outbox: deque[bytes] | None = None
        self._outbox_bytes = 0
        # Chat lines delivered during this loop iteration, written together at its end
        # (one write for every message, however many); None while there are none.
        self._batch: list[bytes] | None = None
        # Traffic, counted per read and per write (not per line).
        self._lines_in = self._lines_out = self._bytes_in = self._bytes_out = 0

    @property
    def name(self) -> str | None:
        """The client's name, or None while it has none (refused, authenticating, joining)."""
        return self._name

    @property
    def traffic(self) -> Traffic:
        """The lines and bytes this connection received and sent so far."""
        return Traffic(self._lines_in, self._lines_out, self._bytes_in, self._bytes_out)

    @property
    def last_input(self) -> float:
        """When the client last sent anything (or connected), on the context's clock."""
        return self._last_input

    # Events from the connection

    def start(self) -> None:
        """The connection is made: check the address, then ask for a password or admit."""
        context = self._context
        now = self._clock()
        refusal = context.admission.check(self._host, now)
        if refusal is not None:
            context.counters.refused[refusal] += 1
            log.debug("refused %s: %s", self.address, refusal)
            self._closing = True
            self._send(replies.refused(refusal))
            self._close_gracefully()
            return
        self._counted_by_policy = True
        self._last_input = now
        settings = self._settings
        if settings.rate_limit > 0:
            self._rate = TokenBucket(settings.rate_limit, settings.rate_burst, now)
        if settings.idle_timeout > 0:
            self._io.set_timer(Timer.IDLE, settings.idle_timeout)
        if context.password is not None:
            self._authenticating = True
            self._send(replies.line(replies.AUTH_REQUIRED))
            if settings.auth_timeout > 0:
                self._io.set_timer(Timer.AUTH, settings.auth_timeout)
            return
        self._join()

    def data_received(self, data: bytes) -> None:
        """Bytes from the client: frame them into lines and answer each."""
        if self._closing:
            return
        now = self._last_input = self._clock()
        lines = self._framer.feed(data)
        self._bytes_in += len(data)
        self._lines_in += len(lines)
        # Data that ends with a newline leaves no line unfinished: no timer to look at.
        if self._line_timeout and (self._line_started is not None or data[-1:] != b"\n"):
            self._watch_line_start(now, bool(lines))
        if not lines:
            return
        if self._suspended:
            # Read before the pause took effect: after the lines already waiting.
            self._held_lines = _chain(self._held_lines, lines)
            return
        rate = self._rate
        if rate is not None and self._rate_strikes and rate.full(now):
            self._rate_strikes = 0
        if self._name is not None and self._stream is None:
            # The hot path: a batch of ordinary lines within the rate gets one write.
            acks = plain_acks(lines)
            if acks is not None and (rate is None or rate.take(now, len(lines))):
                if self._batch is None:
                    self._lines_out += len(lines)
                    self._bytes_out += len(acks)
                    self._write(acks)
                else:
                    self._write_after_batch(acks)
                if self._writing_paused:
                    self._enforce_output_cap()
                return
        self._handle(iter(lines))

    def pause_writing(self) -> None:
        """The connection's write buffer passed its high-water mark."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The connection's write buffer drained below its low-water mark."""
        self._writing_paused = False
        if self._stream is not None:
            self._schedule_stream()
        elif self._outbox and not self._closing:
            self._flush_outbox()

    def connection_lost(self, error: Exception | None) -> None:
        """The connection is closed, by either side; ``error`` says how, if badly."""
        self._closing = True
        # A session ended by the server (exit, a limit) has its reason and its timers
        # stopped already.
        if not self._session_ended:
            if isinstance(error, ConnectionResetError):
                reason = DisconnectReason.RESET
            elif error is not None:
                reason = DisconnectReason.CONNECTION_ERROR
            else:
                reason = DisconnectReason.CLOSED_BY_PEER
            self._end_session(reason)
        self._stream = None
        self._io.cancel_timer(Timer.LINGER)
        if self._counted_by_policy:
            self._context.admission.closed(self._host)
        self._context.counters.closed_traffic.add(
            self._lines_in, self._lines_out, self._bytes_in, self._bytes_out
        )

    def timer_due(self, timer: Timer) -> None:
        """A timer the session set is due."""
        if timer is Timer.IDLE:
            self._check_idle()
        elif timer is Timer.LINE:
            self._check_line()
        elif timer is Timer.AUTH:
            self._auth_timed_out()
        elif timer is Timer.ANSWER:
            self._answer_after_delay()
        elif timer is Timer.NEXT_PIECE:
            self._continue_stream()
        elif timer is Timer.CUT_OFF:
            self.abort(DisconnectReason.SLOW_CONSUMER)
        else:
            # Lingering past the shutdown timeout: the session ended already.
            self.abort(DisconnectReason.SERVER_SHUTDOWN)

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
                continue
            # Any other command is timed, for the latency histogram of /metrics.
            started = self._clock()
            word = COMMAND_NAMES[type(command)]
            if type(command) is Status:
                self._flush(out)
                self._status(command.show_all, lines, started)
                return
            if type(command) is Exit:
                assert self._name is not None
                out.append(replies.goodbye(self._name))
                self._flush(out)
                self.close(DisconnectReason.EXIT)
                self._timed(word, started)
                return
            if type(command) is Help:
                out.append(replies.help_reply())
            else:
                assert self._name is not None
                try:
                    done = chat_answer(self._backend, self._name, command, line, self)
                except BackendUnavailableError:
                    out.append(replies.line(replies.BACKEND_UNAVAILABLE))
                    continue
                if isinstance(done, Pending):
                    self._flush(out)
                    self._park(done, self._write_chat_answer, lines, word, started)
                    return
                out.append(self._chat_answered(done))
                if self._closing:
                    self._timed(word, started)
                    return
            self._timed(word, started)
        self._flush(out)

    def _timed(self, word: str, started: float) -> None:
        """Count the handling time of a command, from ``started`` until now."""
        self._context.counters.command_latency[word].observe(self._clock() - started)

    def _write_chat_answer(self, done: Answer) -> None:
        self._flush([self._chat_answered(done)])

    def _chat_answered(self, done: Answer) -> bytes:
        """The reply to a chat command, noting the name it leaves the client with and the
        message it delivered."""
        if done.delivered is not None:
            self._context.counters.chat_messages[done.delivered] += 1
        if done.new_name is not None and done.new_name != self._name:
            log.debug("%s is now %s", self._name, done.new_name)
            self._name = done.new_name
        return done.reply

    def _over_rate_limit(self, out: list[bytes]) -> bool:
        """Refuse a line over the rate limit; True if the client is now disconnected."""
        self._rate_strikes += 1
        if self._rate_strikes < self._settings.rate_strikes:
            out.append(replies.rate_limited(self._settings.rate_limit))
            return False
        log.warning("%s keeps exceeding the rate limit", self._name or self.address)
        self._flush(out)
        self.close(DisconnectReason.RATE_LIMITED, replies.line(replies.RATE_LIMITED_GOODBYE))
        return True

    def _status(self, show_all: bool, rest: Lines, started: float) -> None:
        """Stream the ``status`` reply, once the backend has the snapshot (timed from
        ``started`` until its first piece is written)."""
        recent = None if show_all else self._settings.status_recent
        try:
            snapshot = self._backend.snapshot(recent)
        except BackendUnavailableError:
            self._write_after_batch(replies.line(replies.BACKEND_UNAVAILABLE))
            self._handle(rest)
            return
        if isinstance(snapshot, Pending):
            self._park(snapshot, self._stream_status, rest, "status", started)
            return
        self._suspend(rest)
        self._stream_status(snapshot)
        self._timed("status", started)

    def _stream_status(self, snapshot: StatusSnapshot) -> None:
        """Write the ``status`` reply a piece at a time; the held lines wait for its end."""
        self._stream = self._status_lines(snapshot)
        self._continue_stream()

    def _status_lines(self, snapshot: StatusSnapshot) -> Iterator[str]:
        visibility = self._settings.show_addresses
        show_addresses = visibility == "all" or (
            visibility == "loopback" and is_loopback(self._host)
        )
        counters = self._context.counters
        return replies.status_lines(
            snapshot,
            show_addresses,
            counters.refused.items(),
            counters.chat_losses.items(),
            snapshot.as_of,
        )

    def _flush(self, chunks: list[bytes]) -> None:
        """Write answers, and drop the client if its unsent output passes the cap."""
        if not chunks:
            return
        self._write_after_batch(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self._writing_paused:
            self._enforce_output_cap()

    def _enforce_output_cap(self) -> None:
        """Drop the client if its unsent output passes the cap.

        Only worth asking once writing is paused: below the high-water mark (at most a
        quarter of the cap) the connection does not pause.
        """
        if self._io.write_buffer_size() > self._settings.max_output_bytes:
            log.warning(
                "%s is not reading its replies: over %d bytes unsent",
                self._name,
                self._settings.max_output_bytes,
            )
            self.abort(DisconnectReason.SLOW_CONSUMER)

    # Chat delivery

    def deliver(self, data: bytes) -> None:
        """Send a chat line at the end of this loop iteration, or queue it while the client
        cannot take it.

        Lines delivered in one iteration are written together (:meth:`flush_deliveries`),
        so a burst costs each recipient one write, not one per message. The queue is
        bounded in messages (``queue_limit``) and in bytes (``max_output_bytes``); past
        either, the client is cut off as a slow consumer.
        """
        if self._closing:
            self._context.counters.chat_losses[ChatLoss.MESSAGES_DROPPED] += 1
            return
        batch = self._batch
        if batch is not None:
            batch.append(data)
            return
        outbox = self._outbox
        if not outbox and self._stream is None and not self._writing_paused:
            self._batch = [data]
            self._io.flush_soon()
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
            losses = self._context.counters.chat_losses
            losses[ChatLoss.SLOW_READERS] += 1
            # The warning in the queue is the server's, not a message dropped.
            losses[ChatLoss.MESSAGES_DROPPED] += queued - self._warned_slow
            log.warning("%s reads too slowly: %d messages queued", self._name, queued)
            # Not now: the backend is in the middle of a delivery loop that this would change.
            self._closing = True
            self._io.set_timer(Timer.CUT_OFF, 0)
        elif queued >= settings.queue_warn and not self._warned_slow:
            # First in the queue, so that the client reads it before what waits behind it.
            self._warned_slow = True
            outbox.appendleft(replies.slow_reader_warning(queued, settings.queue_limit))

    def flush_deliveries(self) -> None:
        """Write the chat lines delivered during the loop iteration that just ended."""
        batch = self._batch
        if batch is None:
            return
        self._batch = None
        if self._closing:
            self._context.counters.chat_losses[ChatLoss.MESSAGES_DROPPED] += len(batch)
            return
        self._send(batch[0] if len(batch) == 1 else b"".join(batch))
        if self._writing_paused:
            self._enforce_output_cap()

    def _write_after_batch(self, data: bytes) -> None:
        """Write ``data`` behind the chat lines delivered earlier in this iteration."""
        batch = self._batch
        if batch is not None:
            self._batch = None
            batch.append(data)
            data = b"".join(batch)
        if data:
            self._send(data)

    def _send(self, data: bytes) -> None:
        """Write ``data``, counted as traffic out (every write but the hot path's comes here)."""
        self._lines_out += data.count(b"\n")
        self._bytes_out += len(data)
        self._write(data)

    def _flush_outbox(self) -> None:
        """Write queued chat lines while the client's write buffer has room."""
        outbox = self._outbox
        while outbox and not self._writing_paused and not self._closing:
            data = outbox.popleft()
            self._outbox_bytes -= len(data)
            self._send(data)
        if not outbox:
            self._warned_slow = False

    # Joining: authentication and admission

    def _authenticate(self, line: bytes, out: list[bytes], rest: Lines) -> bool:
        """Handle a line sent before authentication; True if handling must stop here."""
        password = parse_auth(line)
        if password is None:
            if is_exit(line):
                out.append(replies.line("Goodbye."))
                self._flush(out)
                self.close(DisconnectReason.EXIT)
                return True
            out.append(replies.line(replies.AUTH_FIRST))
            return False
        expected = self._context.password
        assert expected is not None
        if hmac.compare_digest(password, expected):
            self._authenticating = False
            self._io.cancel_timer(Timer.AUTH)
            self._flush(out)
            out.clear()
            return self._join(rest)
        self._wrong_passwords += 1
        self._context.counters.refused[Refusal.WRONG_PASSWORD] += 1
        log.info("wrong password from %s", self.address)
        self._flush(out)
        if self._wrong_passwords >= self._settings.auth_attempts:
            self._disconnect_unnamed(replies.line(replies.TOO_MANY_WRONG_PASSWORDS))
            return True
        self._delayed_answer = replies.wrong_password(
            self._wrong_passwords, self._settings.auth_attempts
        )
        self._suspend(rest)
        self._io.set_timer(Timer.ANSWER, self._settings.auth_delay * self._wrong_passwords)
        return True

    def _answer_after_delay(self) -> None:
        if self._closing:
            return
        self._send(self._delayed_answer)
        self._resume()

    def _auth_timed_out(self) -> None:
        if self._authenticating:
            log.info("%s did not authenticate in time", self.address)
            self._disconnect_unnamed(replies.line(replies.AUTH_TIMEOUT))

    def _disconnect_unnamed(self, farewell: bytes) -> None:
        """Close a connection that never got a name (it has no session to record)."""
        self._closing = True
        self._cancel_timers()
        self._send(farewell)
        self._close_gracefully()

    def _join(self, rest: Lines = _NO_LINES) -> bool:
        """Ask the backend to admit the client; True if the lines in ``rest`` must wait."""
        try:
            admitted = self._backend.admit(self.address, self)
        except BackendUnavailableError:
            self._disconnect_unnamed(replies.line(replies.SERVER_UNAVAILABLE))
            return True
        if isinstance(admitted, Pending):
            self._park(admitted, self._admitted, rest)
            admitted.add_done_callback(self._admitted_after_closing)
            return True
        self._admitted(admitted)
        return self._closing

    def _admitted_after_closing(self, answer: Pending[Admitted | None]) -> None:
        """A slot that came after the connection closed is given back at once.

        The session never had a name, so it recorded no departure of its own; without
        this the slot would stay taken (a health check that connects and closes at once).
        """
        if not self._closing or self._name is not None:
            return
        try:
            admitted = answer.result()
        except BackendUnavailableError:
            return
        if admitted is not None:
            try:
                self._backend.depart(
                    admitted.record.name, DisconnectReason.CLOSED_BY_PEER, hold=False
                )
            except BackendUnavailableError:
                log.warning("%s left, but the backend could not record it", admitted.record.name)

    def _admitted(self, admitted: Admitted | None) -> None:
        """Greet the admitted client, or tell it the server is full."""
        if admitted is None:
            self._context.counters.full += 1
            log.debug(
                "rejected %s: server full (%d clients)", self.address, self._backend.max_clients
            )
            self._disconnect_unnamed(replies.line(replies.SERVER_FULL))
            return
        self._context.counters.admitted += 1
        self._name = name = admitted.record.name
        log.debug("%s connected from %s", name, self.address)
        token = admitted.token if self._settings.resume_grace > 0 else None
        self._send(replies.greeting(name, token))
        if self._drain_notice is not None:
            # Admitted while the server drains (the answer came later): told at once.
            self.deliver(self._drain_notice)

    # Pausing: long replies, delayed and later answers

    def _park(
        self,
        pending: Pending[_T],
        then: Callable[[_T], None],
        rest: Lines,
        word: str = "",
        started: float = 0.0,
    ) -> None:
        """Wait for the backend's answer, holding the lines after it; then go on.

        ``then`` carries on with the answer (writes the reply, or starts a long one);
        the held lines are handled after it. An unavailable backend is answered with a
        line of its own: a client without a name yet is told to come back later. The
        command ``word`` (if any) is timed from ``started`` until ``then`` is done.
        """
        self._suspend(rest)

        def settled(answer: Pending[_T]) -> None:
            if self._closing:
                return
            try:
                value = answer.result()
            except BackendUnavailableError:
                if self._name is None:
                    self._disconnect_unnamed(replies.line(replies.SERVER_UNAVAILABLE))
                    return
                self._write_after_batch(replies.line(replies.BACKEND_UNAVAILABLE))
                self._resume()
                return
            then(value)
            if word:
                self._timed(word, started)
            if not self._closing and self._stream is None:
                self._resume()

        pending.add_done_callback(settled)

    def _suspend(self, rest: Lines) -> None:
        """Hold the lines not yet handled, and stop reading until :meth:`_resume`."""
        self._suspended = True
        self._held_lines = rest
        if not self._reading_paused:
            self._reading_paused = True
            self._io.pause_reading()

    def _resume(self) -> None:
        """Handle the held lines, then read again unless they suspended us anew."""
        self._suspended = False
        held, self._held_lines = self._held_lines, _NO_LINES
        self._handle(held)
        if not self._suspended and not self._closing and self._reading_paused:
            self._reading_paused = False
            self._io.resume_reading()

    def _continue_stream(self) -> None:
        """Write the next piece of the long reply, then let other clients have a turn.

        Not subject to the output cap: this output waits for the reader (a full write
        buffer pauses it until ``resume_writing``), so it never piles up.
        """
        self._stream_scheduled = False
        if self._stream is None or self._closing or self._writing_paused:
            return
        chunk = list(islice(self._stream, STREAM_CHUNK_LINES))
        if chunk:
            self._send(replies.encode_lines(chunk))
            self._schedule_stream()
            return
        self._stream = None
        self._flush_outbox()
        self._resume()

    def _schedule_stream(self) -> None:
        if not self._stream_scheduled:
            self._stream_scheduled = True
            self._io.set_timer(Timer.NEXT_PIECE, 0)

    # Timers

    def _check_idle(self) -> None:
        timeout = self._settings.idle_timeout
        if timeout <= 0:
            # Turned off while the timer was set (see reconfigure).
            return
        remaining = self._last_input + timeout - self._clock()
        if remaining > 0:
            self._io.set_timer(Timer.IDLE, remaining)
            return
        log.info(
            "%s disconnected: no input for %g seconds (idle timeout)",
            self._name or self.address,
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
        if not self._line_timer_set:
            self._line_timer_set = True
            self._io.set_timer(Timer.LINE, self._settings.line_timeout)

    def _check_line(self) -> None:
        self._line_timer_set = False
        if self._line_started is None:
            return
        timeout = self._settings.line_timeout
        remaining = self._line_started + timeout - self._clock()
        if remaining > 0 or self._suspended:
            self._line_timer_set = True
            self._io.set_timer(Timer.LINE, max(remaining, 0.1))
            return
        log.info(
            "%s disconnected: a line took over %g seconds (line timeout)",
            self._name or self.address,
            timeout,
        )
        self._time_out(DisconnectReason.LINE_TIMEOUT, replies.line_timeout(timeout))

    def _time_out(self, reason: DisconnectReason, farewell: bytes) -> None:
        if self._name is None:
            self._disconnect_unnamed(farewell)
        else:
            self.close(reason, farewell)

    def _cancel_timers(self) -> None:
        io = self._io
        io.cancel_timer(Timer.IDLE)
        if self._line_timer_set:
            self._line_timer_set = False
            io.cancel_timer(Timer.LINE)
        io.cancel_timer(Timer.AUTH)
        io.cancel_timer(Timer.ANSWER)

    # Ending the session

    def drain(self, notice: bytes) -> None:
        """The server drains: tell the client to reconnect, and hold its session when it goes.

        The connection stays open, so that the client leaves when it is ready; from now on
        a session that ends without ``exit`` (the client closes or vanishes, or the drain's
        bound passes and the server closes it) is recorded as ``drained`` and held for
        ``/resume`` on another server. The notice goes the way chat lines go, so it never
        lands inside a block being written. A connection still authenticating has no
        session to keep: it is told and closed. One waiting for its admission is told as
        soon as it is greeted.
        """
        if self._closing or self._drain_notice is not None:
            return
        self._drain_notice = notice
        if self._authenticating:
            self._disconnect_unnamed(notice)
        elif self._name is not None:
            self.deliver(notice)

    def kick(self) -> bool:
        """An operator disconnects the client: tell it, record ``kicked``; False if the
        connection has no session to end (not named yet, or closing already)."""
        if self._name is None or self._closing:
            return False
        self.close(DisconnectReason.KICKED, replies.line(replies.KICKED))
        return True

    def evict(self, farewell: bytes) -> None:
        """The backend gave the client's name to another session (a cluster that lost its
        state): send ``farewell`` and close. The backend has no session of it any more,
        so its departure records nothing there; it counts here as ``name taken``."""
        self.close(DisconnectReason.NAME_TAKEN, farewell)

    def reconfigure(self, settings: ServerSettings) -> None:
        """Live settings changed (SIGHUP, the admin API): apply them to this connection.

        The idle timeout counts from the client's last input, so turning it on or
        lowering it disconnects a client already silent for longer; a new rate limit
        starts with a full bucket. Everything else is read from the settings when used.
        """
        old, self._settings = self._settings, settings
        if self._closing or not self._counted_by_policy:
            return
        now = self._clock()
        if settings.idle_timeout != old.idle_timeout:
            if settings.idle_timeout > 0:
                remaining = self._last_input + settings.idle_timeout - now
                self._io.set_timer(Timer.IDLE, max(remaining, 0.0))
            else:
                self._io.cancel_timer(Timer.IDLE)
        if (settings.rate_limit, settings.rate_burst) != (old.rate_limit, old.rate_burst):
            self._rate = (
                TokenBucket(settings.rate_limit, settings.rate_burst, now)
                if settings.rate_limit > 0
                else None
            )

    def close(self, reason: DisconnectReason, farewell: bytes = b"") -> None:
        """End the session for ``reason``: send ``farewell``, then close gracefully.

        The slot is freed at once; the socket closes as :meth:`_close_gracefully` says.
        """
        if self._closing:
            return
        self._closing = True
        if farewell:
            self._write_after_batch(farewell)
        elif self._batch is not None:
            self._write_after_batch(b"")
        self._end_session(reason)
        self._close_gracefully()

    def _close_gracefully(self) -> None:
        """FIN after the unsent bytes; abort if the peer has not closed within the bound.

        Closing a socket with unread input would send a RST, which can destroy the
        farewell before the client reads it.
        """
        self._io.close()
        self._io.set_timer(Timer.LINGER, self._settings.shutdown_timeout)

    def abort(self, reason: DisconnectReason) -> None:
        """End the session for ``reason`` now, dropping whatever was not yet sent."""
        self._closing = True
        self._end_session(reason)
        self._io.abort()

    def _end_session(self, reason: DisconnectReason) -> None:
        """Record the departure once, with the first reason that applies, and stop timers.

        After a drain notice, a connection lost or closed by the server's stop is recorded
        as ``drained``: the client was told to go, and may resume elsewhere.
        """
        self._cancel_timers()
        name = self._name
        if name is None or self._session_ended:
            return
        self._session_ended = True
        if self._drain_notice is not None and reason in _LOST_REASONS:
            reason = DisconnectReason.DRAINED
        self._context.counters.departures[reason] += 1
        try:
            done = self._backend.depart(name, reason, hold=reason in HELD_REASONS)
        except BackendUnavailableError:
            log.warning("%s left (%s), but the backend could not record it", name, reason)
            return
        if isinstance(done, Pending):
            done.add_done_callback(_log_failed_departure(name, reason))
        log.debug("%s disconnected (%s)", name, reason)


def _chain(first: Lines, second: Sequence[bytes | LineTooLong]) -> Lines:
    """The held lines, then lines read after them."""
    yield from first
    yield from second


def _log_failed_departure(name: str, reason: DisconnectReason) -> Callable[[Pending[None]], None]:
    """A callback that logs a departure the backend could not record."""

    def check(done: Pending[None]) -> None:
        try:
            done.result()
        except BackendUnavailableError:
            log.warning("%s left (%s), but the backend could not record it", name, reason)

    return check
