"""The server session without sockets or real time: a fake connection and a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pytest

from ackchat.backend.interface import Backend
from ackchat.backend.memory import MemoryBackend
from ackchat.protocol import replies
from ackchat.records import ChatLoss, DisconnectReason
from ackchat.server.assembly import address_policy
from ackchat.server.session import ServerCounters, ServerSession, SessionContext, Timer
from ackchat.settings import ServerSettings
from backends import DeferredBackend, ManualClock, memory_backend

SETTINGS = ServerSettings(shutdown_timeout=5.0)


@dataclass
class FakeConnection:
    """What the session asks of a connection, recorded; timers as due times on the clock."""

    clock: ManualClock
    sent: bytearray = field(default_factory=bytearray)
    reading: bool = True
    closed: bool = False
    aborted: bool = False
    unsent: int = 0
    timers: dict[Timer, float] = field(default_factory=dict)
    # The session to flush at the end of the loop iteration, once it asked to be.
    session: ServerSession | None = None
    flush_asked: int = 0
    writes: int = 0
    # Called with each write before it is recorded (to look at other sessions then).
    on_write: Callable[[bytes], None] | None = None

    def write(self, data: bytes) -> None:
        if self.on_write is not None:
            self.on_write(data)
        self.writes += 1
        self.sent += data

    def write_buffer_size(self) -> int:
        return self.unsent

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def set_timer(self, timer: Timer, delay: float) -> None:
        self.timers[timer] = self.clock.mono + delay

    def cancel_timer(self, timer: Timer) -> None:
        self.timers.pop(timer, None)

    def flush_soon(self) -> None:
        self.flush_asked += 1

    def end_iteration(self) -> None:
        """The event loop's turn is over: the session writes the chat lines it holds."""
        if self.flush_asked and self.session is not None:
            self.flush_asked = 0
            self.session.flush_deliveries()

    def lines(self) -> list[str]:
        """The lines sent since the last call, once the loop's turn is over."""
        self.end_iteration()
        text = self.sent.decode()
        self.sent.clear()
        return text.splitlines()


class Harness:
    """One session on a fake connection, with the backend and the clock it shares."""

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        password: bytes | None = None,
        clock: ManualClock | None = None,
        **settings: Any,
    ) -> None:
        self.clock = clock or ManualClock()
        self.settings = replace(SETTINGS, **settings)
        self.backend = backend or memory_backend(self.clock, max_clients=3)
        self.counters = ServerCounters()
        self.context = SessionContext(
            settings=self.settings,
            backend=self.backend,
            admission=address_policy(self.settings),
            password=password,
            counters=self.counters,
            clock=self.clock.monotonic,
        )
        self.io = FakeConnection(self.clock)
        self.session = ServerSession(self.context, self.io, "127.0.0.1", "127.0.0.1:5000")
        self.io.session = self.session
        self.session.start()

    def send(self, data: bytes) -> list[str]:
        """Feed ``data`` to the session; the lines it answered with."""
        self.session.data_received(data)
        return self.io.lines()

    def advance(self, seconds: float) -> list[str]:
        """Move the clock on, firing the timers that fall due in order; the lines sent."""
        end = self.clock.mono + seconds
        while True:
            due = [(at, timer) for timer, at in self.io.timers.items() if at <= end]
            if not due:
                break
            at, timer = min(due, key=lambda entry: entry[0])
            self.clock.advance(max(at - self.clock.mono, 0.0))
            del self.io.timers[timer]
            self.session.timer_due(timer)
        self.clock.advance(end - self.clock.mono)
        return self.io.lines()

    def reasons(self) -> dict[str, DisconnectReason | None]:
        """Each session's reason for leaving, by name, from the memory backend's cache."""
        memory = cast(MemoryBackend, self.backend)
        return {record.name: record.reason for record in memory.snapshot(None).sessions}


def greeted(harness: Harness) -> Harness:
    lines = harness.io.lines()
    assert lines[0] == "Welcome! You are Client01."
    return harness


def test_a_session_is_greeted_acknowledged_and_says_goodbye() -> None:
    harness = greeted(Harness())
    assert harness.send(b"Hello, Server!\nsecond\n") == ["Hello, Server! ACK", "second ACK"]
    assert harness.send(b"exit\nignored\n") == ["Goodbye, Client01."]
    assert harness.io.closed
    assert harness.reasons() == {"Client01": DisconnectReason.EXIT}


def test_a_closing_connection_is_cut_off_after_the_linger_bound() -> None:
    harness = greeted(Harness(shutdown_timeout=5.0))
    harness.send(b"exit\n")
    assert Timer.LINGER in harness.io.timers
    harness.advance(4.9)
    assert not harness.io.aborted
    harness.advance(0.2)
    assert harness.io.aborted


def test_a_peer_that_closes_in_time_is_not_cut_off() -> None:
    harness = greeted(Harness(shutdown_timeout=5.0))
    harness.send(b"exit\n")
    harness.session.connection_lost(None)
    assert Timer.LINGER not in harness.io.timers
    harness.advance(10.0)
    assert not harness.io.aborted


def test_the_idle_timeout_counts_from_the_last_input() -> None:
    harness = greeted(Harness(idle_timeout=5.0))
    harness.advance(3.0)
    assert harness.send(b"still here\n") == ["still here ACK"]
    assert harness.advance(4.0) == []
    assert harness.advance(1.5) == ["Idle timeout: no input for 5 seconds. Goodbye."]
    assert harness.io.closed
    assert harness.reasons() == {"Client01": DisconnectReason.IDLE_TIMEOUT}


def test_a_line_must_end_within_the_line_timeout() -> None:
    harness = greeted(Harness(line_timeout=30.0))
    assert harness.send(b"a slow li") == []
    harness.advance(20.0)
    assert harness.send(b"ne\nand another sta") == ["a slow line ACK"]
    # The new unfinished line started at 20 s: it has until 50 s.
    assert harness.advance(29.0) == []
    assert harness.advance(2.0) == ["Line timeout: a line must end within 30 seconds. Goodbye."]
    assert harness.reasons() == {"Client01": DisconnectReason.LINE_TIMEOUT}


def test_an_unauthenticated_client_times_out_without_a_session() -> None:
    harness = Harness(password=b"pw", auth_timeout=30.0)
    assert harness.io.lines() == [replies.AUTH_REQUIRED]
    assert harness.advance(29.0) == []
    assert harness.advance(2.0) == [replies.AUTH_TIMEOUT]
    assert harness.io.closed
    assert harness.reasons() == {}


def test_a_wrong_password_is_answered_after_a_growing_delay_and_lines_wait() -> None:
    harness = Harness(password=b"pw", auth_delay=1.0, auth_attempts=3)
    harness.io.lines()
    assert harness.send(b"auth nope\nhello\n") == []
    assert not harness.io.reading
    assert harness.advance(0.9) == []
    assert harness.advance(0.2) == [
        "ERROR wrong password (attempt 1 of 3).",
        replies.AUTH_FIRST,
    ]
    assert harness.io.reading
    assert harness.send(b"auth wrong\n") == []
    assert harness.advance(1.9) == []
    assert harness.advance(0.2) == ["ERROR wrong password (attempt 2 of 3)."]
    assert harness.send(b"auth pw\n")[0] == "Welcome! You are Client01."
    assert harness.counters.refused == {"wrong passwords": 2}


def test_a_slow_reader_is_warned_then_cut_off_when_its_queue_is_full() -> None:
    harness = greeted(Harness(queue_warn=3, queue_limit=5))
    harness.session.pause_writing()
    for number in range(3):
        harness.session.deliver(f"m{number}\n".encode())
    assert harness.io.lines() == []
    harness.session.resume_writing()
    assert harness.io.lines() == [
        "WARNING you are reading slowly: 3 messages wait for you; at 5 you will be disconnected.",
        "m0",
        "m1",
        "m2",
    ]
    harness.session.pause_writing()
    for number in range(5):
        harness.session.deliver(f"n{number}\n".encode())
    # Cut off after the delivery loop, not inside it.
    assert not harness.io.aborted
    harness.advance(0.0)
    assert harness.io.aborted
    assert harness.reasons() == {"Client01": DisconnectReason.SLOW_CONSUMER}
    assert harness.counters.chat_losses == {
        ChatLoss.SLOW_READERS: 1,
        ChatLoss.MESSAGES_DROPPED: 5,
    }


def test_a_client_that_does_not_read_its_replies_is_cut_off_at_the_output_cap() -> None:
    harness = greeted(Harness(max_output_bytes=1000))
    harness.session.pause_writing()
    harness.io.unsent = 900
    harness.send(b"fine\n")
    assert not harness.io.aborted
    harness.io.unsent = 1001
    harness.send(b"one too many\n")
    assert harness.io.aborted
    assert harness.reasons() == {"Client01": DisconnectReason.SLOW_CONSUMER}


def test_lines_over_the_rate_are_refused_then_the_client_is_cut_off() -> None:
    harness = greeted(Harness(rate_limit=1.0, rate_burst=2, rate_strikes=2))
    assert harness.send(b"a\nb\nc\n") == [
        "a ACK",
        "b ACK",
        "ERROR rate limit: over 1 lines per second; the line was discarded.",
    ]
    harness.advance(1.0)
    assert harness.send(b"d\ne\n") == [
        "d ACK",
        replies.RATE_LIMITED_GOODBYE,
    ]
    assert harness.reasons() == {"Client01": DisconnectReason.RATE_LIMITED}


def test_a_long_reply_is_written_in_pieces_at_the_readers_pace() -> None:
    clock = ManualClock()
    backend = memory_backend(clock, max_clients=3, history_limit=500)
    for number in range(200):
        admitted = backend.admit(f"192.0.2.1:{number}", _Nobody())
        assert admitted is not None
        backend.depart(admitted.record.name, DisconnectReason.EXIT, hold=False)
    harness = Harness(backend, clock=clock)
    harness.io.lines()
    first = harness.send(b"status all\nafter\n")
    assert len(first) == 64
    assert not harness.io.reading
    harness.session.pause_writing()
    assert harness.advance(0.0) == []
    harness.session.resume_writing()
    rest = harness.advance(0.0)
    assert rest[-2:] == [".", "after ACK"]
    assert len(first) + len(rest) == 1 + 201 + 1 + 1
    assert harness.io.reading


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (None, DisconnectReason.CLOSED_BY_PEER),
        (ConnectionResetError(), DisconnectReason.RESET),
        (OSError("broken"), DisconnectReason.CONNECTION_ERROR),
    ],
)
def test_how_the_connection_was_lost_is_the_reason(
    error: Exception | None, reason: DisconnectReason
) -> None:
    harness = greeted(Harness())
    harness.session.connection_lost(error)
    assert harness.reasons() == {"Client01": reason}


def test_a_session_parks_on_later_answers_and_keeps_the_order() -> None:
    clock = ManualClock()
    deferred = DeferredBackend(memory_backend(clock))
    harness = Harness(cast(Backend, deferred), clock=clock)
    assert harness.io.lines() == []
    assert not harness.io.reading
    assert deferred.settle() == 1
    assert harness.io.lines()[0] == "Welcome! You are Client01."
    assert harness.io.reading
    assert harness.send(b"/join dev\nhello\n") == []
    assert not harness.io.reading
    deferred.settle()
    assert harness.io.lines() == ["joined #dev: 1 member", ".", "hello ACK"]
    assert harness.io.reading


def test_an_unavailable_backend_gets_its_own_reply_lines() -> None:
    clock = ManualClock()
    deferred = DeferredBackend(memory_backend(clock))
    refused = Harness(cast(Backend, deferred), clock=clock)
    deferred.fail()
    assert refused.io.lines() == [replies.SERVER_UNAVAILABLE]
    assert refused.io.closed

    harness = Harness(cast(Backend, deferred), clock=clock)
    deferred.settle()
    harness.io.lines()
    assert harness.send(b"who\nhello\n") == []
    deferred.fail()
    assert harness.io.lines() == [replies.BACKEND_UNAVAILABLE, "hello ACK"]
    assert not harness.io.closed


def test_a_refused_address_is_told_why_and_never_named() -> None:
    harness = Harness(deny=("127.0.0.0/8",))
    assert harness.io.lines() == ["Connection refused: address not allowed. Try again later."]
    assert harness.io.closed
    assert harness.session.name is None
    assert harness.counters.refused == {"address not allowed": 1}


class _Nobody:
    def deliver(self, data: bytes) -> None:
        """Nothing reads it."""


# Chat deliveries, coalesced per loop iteration


def room_of(count: int, **settings: Any) -> list[Harness]:
    """``count`` sessions on one backend, all in #dev, their output read."""
    clock = ManualClock()
    backend = memory_backend(clock, max_clients=count)
    harnesses = [Harness(backend, clock=clock, **settings) for _ in range(count)]
    for harness in harnesses:
        harness.send(b"/join #dev\n")
    for harness in harnesses:
        harness.io.lines()
    return harnesses


def messages(lines: list[str]) -> list[str]:
    """The texts of the chat messages (not presence changes) among ``lines``."""
    return [
        line.rsplit(": ", 1)[1]
        for line in lines
        if line.startswith("@") and " #dev " in line and " *: " not in line
    ]


def test_a_burst_reaches_each_member_in_one_write_complete_and_in_order() -> None:
    sender, *members = room_of(4)
    burst = b"".join(f"/say #dev m{number}\n".encode() for number in range(50))
    for member in members:
        member.io.writes = 0
    acks = sender.send(burst)
    assert len(acks) == 50
    for member in members:
        assert member.io.writes == 0  # held until the loop's turn is over
        assert messages(member.io.lines()) == [f"m{number}" for number in range(50)]
        assert member.io.writes == 1


def test_the_senders_ack_follows_the_queueing_of_its_message() -> None:
    sender, member = room_of(2)
    queued_when_acked: list[int] = []

    def note(data: bytes) -> None:
        if b"ACK" in data:
            queued_when_acked.append(member.io.flush_asked)

    sender.io.on_write = note
    assert sender.send(b"/say #dev hello\n") == ["/say #dev hello ACK"]
    assert queued_when_acked == [1]
    assert messages(member.io.lines()) == ["hello"]


def test_a_member_that_leaves_in_a_burst_gets_nothing_after_its_leave() -> None:
    sender, stayer, leaver = room_of(3)
    sender.session.data_received(b"/say #dev before1\n/say #dev before2\n")
    leaver.session.data_received(b"/leave #dev\n")
    sender.session.data_received(b"/say #dev after\n")
    left = leaver.io.lines()
    # The reply to /leave comes behind the messages delivered before it, and nothing after.
    assert messages(left) == ["before1", "before2"]
    assert left[-1] == "left #dev"
    assert messages(stayer.io.lines()) == ["before1", "before2", "after"]


def test_a_member_whose_writing_is_paused_queues_and_is_warned_at_the_same_bounds() -> None:
    sender, reader = room_of(2, queue_warn=3, queue_limit=5)
    sender.send(b"/say #dev first\n")
    reader.session.pause_writing()
    reader.io.end_iteration()  # the first message was written before the pause
    assert messages(reader.io.lines()) == ["first"]
    sender.send(b"".join(f"/say #dev q{number}\n".encode() for number in range(3)))
    assert reader.io.lines() == []
    reader.session.resume_writing()
    lines = reader.io.lines()
    assert lines[0].startswith("WARNING you are reading slowly: 3 messages")
    assert messages(lines) == ["q0", "q1", "q2"]
    reader.session.pause_writing()
    sender.send(b"".join(f"/say #dev r{number}\n".encode() for number in range(5)))
    reader.advance(0.0)
    assert reader.io.aborted
    assert reader.counters.chat_losses == {
        ChatLoss.SLOW_READERS: 1,
        ChatLoss.MESSAGES_DROPPED: 5,
    }


def test_a_burst_past_the_output_cap_cuts_the_reader_off_when_it_is_written() -> None:
    sender, reader = room_of(2, max_output_bytes=1000)
    sender.send(b"/say #dev hello\n")
    reader.session.pause_writing()
    reader.io.unsent = 1001
    reader.io.end_iteration()
    assert reader.io.aborted
    assert reader.reasons()["Client02"] is DisconnectReason.SLOW_CONSUMER


def test_lines_held_for_a_session_that_was_cut_off_count_as_dropped() -> None:
    sender, reader = room_of(2)
    sender.send(b"/say #dev one\n/say #dev two\n")
    reader.session.abort(DisconnectReason.SLOW_CONSUMER)
    reader.io.end_iteration()
    assert reader.io.sent == b""
    assert reader.counters.chat_losses == {ChatLoss.MESSAGES_DROPPED: 2}


# Draining (SIGUSR1): told to reconnect, held when gone

NOTICE = replies.draining("127.0.0.1:1235")


def token_of(harness: Harness) -> str:
    """The resume token in the greeting, which must not have been read yet."""
    (line,) = [text for text in harness.io.lines() if text.startswith(replies.RESUME_PREFIX)]
    return line.removeprefix(replies.RESUME_PREFIX)


def test_a_drained_client_is_told_once_keeps_its_session_and_is_held_when_it_goes() -> None:
    clock = ManualClock()
    backend = memory_backend(clock, max_clients=3)
    harness = Harness(backend, clock=clock)
    token = token_of(harness)
    harness.session.drain(NOTICE)
    harness.session.drain(NOTICE)
    assert harness.io.lines() == ["Server draining: please reconnect to 127.0.0.1:1235."]
    assert not harness.io.closed
    assert harness.send(b"still here\n") == ["still here ACK"]
    harness.session.connection_lost(None)
    assert harness.reasons() == {"Client01": DisconnectReason.DRAINED}
    elsewhere = Harness(backend, clock=clock)
    elsewhere.io.lines()
    resumed = elsewhere.send(f"/resume {token}\n".encode())
    assert resumed[0].startswith("Resumed: you are Client01 again")


def test_without_a_redirect_the_notice_says_reconnect() -> None:
    harness = greeted(Harness())
    harness.session.drain(replies.draining())
    assert harness.io.lines() == ["Server draining: please reconnect."]


def test_the_drain_notice_waits_for_the_end_of_a_block_being_written() -> None:
    clock = ManualClock()
    backend = memory_backend(clock, max_clients=3, history_limit=500)
    for number in range(200):
        admitted = backend.admit(f"192.0.2.1:{number}", _Nobody())
        assert admitted is not None
        backend.depart(admitted.record.name, DisconnectReason.EXIT, hold=False)
    harness = Harness(backend, clock=clock)
    harness.io.lines()
    first = harness.send(b"status all\n")
    harness.session.drain(NOTICE)
    rest = harness.advance(0.0)
    lines = first + rest
    assert lines.index(".") == len(lines) - 2
    assert lines[-1] == "Server draining: please reconnect to 127.0.0.1:1235."


def _exit(harness: Harness) -> None:
    harness.send(b"exit\n")


def _close(harness: Harness) -> None:
    harness.session.connection_lost(None)


def _reset(harness: Harness) -> None:
    harness.session.connection_lost(ConnectionResetError())


def _shut_down(harness: Harness) -> None:
    harness.session.close(
        DisconnectReason.SERVER_SHUTDOWN, replies.line(replies.SERVER_SHUTTING_DOWN)
    )


def _cut_off(harness: Harness) -> None:
    harness.session.abort(DisconnectReason.SERVER_SHUTDOWN)


def _idle(harness: Harness) -> None:
    harness.advance(harness.settings.idle_timeout + 1.0)


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (_exit, DisconnectReason.EXIT),
        (_close, DisconnectReason.DRAINED),
        (_reset, DisconnectReason.DRAINED),
        (_shut_down, DisconnectReason.DRAINED),
        (_cut_off, DisconnectReason.DRAINED),
        (_idle, DisconnectReason.IDLE_TIMEOUT),
    ],
    ids=["exit", "closed", "reset", "shutdown", "cut off", "idle timeout"],
)
def test_after_the_notice_a_session_lost_or_stopped_is_drained_and_an_exit_is_an_exit(
    end: Callable[[Harness], None], reason: DisconnectReason
) -> None:
    harness = greeted(Harness(idle_timeout=100.0))
    harness.session.drain(NOTICE)
    end(harness)
    assert harness.reasons() == {"Client01": reason}


def test_a_client_still_authenticating_is_told_and_closed_without_a_session() -> None:
    harness = Harness(password=b"pw")
    assert harness.io.lines() == [replies.AUTH_REQUIRED]
    harness.session.drain(NOTICE)
    assert harness.io.lines() == ["Server draining: please reconnect to 127.0.0.1:1235."]
    assert harness.io.closed
    assert harness.send(b"auth pw\n") == []
    assert harness.reasons() == {}


def test_a_client_admitted_while_the_server_drains_is_told_after_its_greeting() -> None:
    clock = ManualClock()
    deferred = DeferredBackend(memory_backend(clock))
    harness = Harness(cast(Backend, deferred), clock=clock)
    harness.session.drain(NOTICE)
    assert harness.io.lines() == []
    deferred.settle()
    lines = harness.io.lines()
    assert lines[0] == "Welcome! You are Client01."
    assert lines[-2:] == [".", "Server draining: please reconnect to 127.0.0.1:1235."]


def test_a_client_whose_name_the_cluster_gave_away_is_told_and_closed() -> None:
    harness = greeted(Harness())
    harness.session.evict(replies.line(replies.NAME_TAKEN))
    assert harness.io.lines() == [replies.NAME_TAKEN]
    assert harness.io.closed
    assert harness.counters.departures[DisconnectReason.NAME_TAKEN] == 1
    assert harness.send(b"still here?\n") == []
