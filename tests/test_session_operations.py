"""What the session does for operators, without sockets or real time: its counts (traffic,
admissions, departures, messages, command times), a kick, and live setting changes."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest

from ackchat.backend.interface import Backend
from ackchat.protocol import replies
from ackchat.records import DisconnectReason
from ackchat.server.stats import Traffic
from backends import DeferredBackend, ManualClock, memory_backend
from test_session import Harness, greeted


def written(harness: Harness) -> list[bytes]:
    """Collect every write of the harness's connection from now on."""
    writes: list[bytes] = []
    harness.io.on_write = writes.append
    return writes


def test_traffic_is_counted_and_handed_to_the_server_when_the_connection_closes() -> None:
    harness = Harness()
    greeting = bytes(harness.io.sent)
    writes = written(harness)
    harness.send(b"one\ntwo\n")
    harness.send(b"help\nthr")
    harness.send(b"ee\n")
    out = greeting + b"".join(writes)
    assert harness.session.traffic == Traffic(
        lines_in=4, lines_out=out.count(b"\n"), bytes_in=19, bytes_out=len(out)
    )
    assert harness.counters.closed_traffic == Traffic()
    harness.session.connection_lost(None)
    assert harness.counters.closed_traffic == harness.session.traffic


def test_admissions_refusals_and_departures_are_counted() -> None:
    clock = ManualClock()
    backend = memory_backend(clock, max_clients=1)
    first = greeted(Harness(backend, clock=clock))
    second = Harness(backend, clock=clock)
    assert second.io.lines() == [replies.SERVER_FULL]
    assert (first.counters.admitted, first.counters.full) == (1, 0)
    assert (second.counters.admitted, second.counters.full) == (0, 1)
    first.send(b"exit\n")
    assert first.counters.departures == {DisconnectReason.EXIT: 1}


def test_a_kicked_client_is_told_recorded_as_kicked_and_not_held() -> None:
    clock = ManualClock()
    backend = memory_backend(clock)
    harness = Harness(backend, clock=clock)
    token = harness.io.lines()[2].removeprefix(replies.RESUME_PREFIX)
    assert harness.session.kick()
    assert harness.io.lines() == [replies.KICKED]
    assert harness.io.closed
    assert harness.reasons() == {"Client01": DisconnectReason.KICKED}
    assert harness.counters.departures == {DisconnectReason.KICKED: 1}
    assert not harness.session.kick()
    harness.session.connection_lost(None)
    assert harness.reasons() == {"Client01": DisconnectReason.KICKED}
    returning = Harness(backend, clock=clock)
    returning.io.lines()
    assert returning.send(f"/resume {token}\n".encode()) == [
        "ERROR unknown or expired resume token"
    ]


def test_a_client_without_a_name_cannot_be_kicked() -> None:
    harness = Harness(password=b"pw")
    assert not harness.session.kick()
    assert not harness.io.closed


def test_an_idle_timeout_turned_on_counts_from_the_last_input() -> None:
    harness = greeted(Harness(idle_timeout=0.0))
    harness.advance(10.0)
    harness.session.reconfigure(replace(harness.settings, idle_timeout=15.0))
    assert harness.advance(4.9) == []
    assert harness.advance(0.2) == ["Idle timeout: no input for 15 seconds. Goodbye."]
    assert harness.reasons() == {"Client01": DisconnectReason.IDLE_TIMEOUT}


def test_an_idle_timeout_lowered_below_the_silence_disconnects_at_once() -> None:
    harness = greeted(Harness(idle_timeout=300.0))
    harness.advance(60.0)
    harness.session.reconfigure(replace(harness.settings, idle_timeout=30.0))
    assert harness.advance(0.0) == ["Idle timeout: no input for 30 seconds. Goodbye."]


def test_an_idle_timeout_turned_off_disconnects_nobody() -> None:
    harness = greeted(Harness(idle_timeout=5.0))
    harness.session.reconfigure(replace(harness.settings, idle_timeout=0.0))
    assert harness.advance(60.0) == []
    assert not harness.io.closed


def test_a_new_rate_limit_applies_to_a_connected_client_and_can_be_lifted() -> None:
    harness = greeted(Harness(rate_limit=0.0))
    limited = replace(harness.settings, rate_limit=1.0, rate_burst=2)
    harness.session.reconfigure(limited)
    assert harness.send(b"a\nb\nc\n") == ["a ACK", "b ACK", replies.rate_limited(1.0).decode()[:-1]]
    harness.session.reconfigure(replace(limited, rate_limit=0.0))
    assert harness.send(b"d\ne\nf\n") == ["d ACK", "e ACK", "f ACK"]


def test_commands_are_timed_by_their_word_and_plain_lines_are_not() -> None:
    harness = greeted(Harness())
    harness.send(b"plain\nhelp\n/join dev\nstatus\nanother\n")
    harness.io.lines()
    timed = {
        word: histogram.count
        for word, histogram in harness.counters.command_latency.items()
        if histogram.count
    }
    assert timed == {"help": 1, "join": 1, "status": 1}


def test_a_command_answered_later_is_timed_until_its_answer() -> None:
    clock = ManualClock()
    deferred = DeferredBackend(memory_backend(clock))
    harness = Harness(cast(Backend, deferred), clock=clock)
    deferred.settle()
    harness.io.lines()
    harness.send(b"who\n")
    clock.advance(0.3)
    deferred.settle()
    assert harness.io.lines() == ["who: 1 connected", "Client01", "."]
    who = harness.counters.command_latency["who"]
    assert who.count == 1
    assert who.total == pytest.approx(0.3)


def test_delivered_messages_are_counted_by_scope_and_refused_ones_are_not() -> None:
    clock = ManualClock()
    backend = memory_backend(clock)
    sender = greeted(Harness(backend, clock=clock))
    receiver = Harness(backend, clock=clock)
    receiver.io.lines()
    sender.send(b"/msg Client02 hi\n/msg nobody hi\n/all hello\n/join dev\n/say dev hey\n")
    receiver.send(b"/join dev\n")
    sender.send(b"/say dev again\n/say ops no\n")
    assert sender.counters.chat_messages == {"direct": 1, "all": 1, "room": 2}
    assert receiver.counters.chat_messages == {}
