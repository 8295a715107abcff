"""Chat commands carried out against a backend, without sockets."""

from __future__ import annotations

from typing import cast

import pytest

from ackchat.backend.interface import Backend, BackendUnavailableError
from ackchat.backend.memory import MemoryBackend
from ackchat.backend.pending import Pending
from ackchat.chat.dispatch import Answer, answer
from ackchat.protocol.commands import Direct, Join, Nick, Resume, Status, Who, parse_command
from ackchat.records import DisconnectReason
from backends import DeferredBackend, ManualClock, memory_backend
from test_hub import Inbox


def named(backend: MemoryBackend, peer: Inbox | None = None, name: str | None = None) -> str:
    """Admit a client (and rename it); returns its name."""
    admitted = backend.admit("127.0.0.1:1", peer or Inbox())
    assert admitted is not None
    if name is None:
        return admitted.record.name
    return backend.rename(admitted.record.name, name)


def test_a_delivered_message_is_acked_with_the_line_as_sent() -> None:
    backend = memory_backend()
    named(backend, name="alice")
    bob = Inbox()
    named(backend, bob, "bob")
    line = b"/msg bob  hi"
    assert answer(backend, "alice", parse_command(line), line, Inbox()) == Answer(
        b"/msg bob  hi ACK\n", delivered="direct"
    )
    assert bob.texts() == ["alice>bob:  hi"]


def test_chat_errors_become_error_lines() -> None:
    backend = memory_backend()
    named(backend, name="alice")
    done = answer(backend, "alice", Direct("ghost", "x"), b"/msg ghost x", Inbox())
    assert done == Answer(b"ERROR no such client: ghost\n")


def test_blocks_and_new_names() -> None:
    backend = memory_backend()
    first = named(backend)
    renamed = answer(backend, first, Nick("alice"), b"/nick alice", Inbox())
    assert renamed == Answer(b"You are now alice.\n", "alice")
    joined = answer(backend, "alice", Join("dev"), b"/join dev", Inbox())
    assert joined == Answer(b"joined #dev: 1 member\n.\n")
    assert answer(backend, "alice", Who(), b"who", Inbox()) == Answer(
        b"who: 1 connected\nalice #dev\n.\n"
    )


def test_resume_names_the_identity_taken_back() -> None:
    clock = ManualClock()
    backend = memory_backend(clock)
    admitted = backend.admit("127.0.0.1:1", Inbox())
    assert admitted is not None
    backend.rename(admitted.record.name, "wanderer")
    backend.depart("wanderer", DisconnectReason.CLOSED_BY_PEER, hold=True)
    clock.advance(1.0)
    fresh = named(backend)
    done = answer(backend, fresh, Resume(admitted.token), b"/resume x", Inbox())
    assert isinstance(done, Answer)
    assert done.new_name == "wanderer"
    assert done.reply.startswith(b"Resumed: you are wanderer again; 0 missed messages follow")
    connected = [
        record.name for record in backend.snapshot(None).sessions if record.disconnected_at is None
    ]
    assert connected == ["wanderer"]


def test_a_later_answer_is_formatted_when_it_comes_and_errors_become_lines() -> None:
    inner = memory_backend()
    named(inner, name="alice")
    deferred = DeferredBackend(inner)
    backend = cast(Backend, deferred)
    joined = answer(backend, "alice", Join("dev"), b"/join dev", Inbox())
    refused = answer(backend, "alice", Direct("ghost", "x"), b"/msg ghost x", Inbox())
    assert isinstance(joined, Pending)
    assert isinstance(refused, Pending)
    assert not joined.done
    assert deferred.settle() == 2
    assert joined.result() == Answer(b"joined #dev: 1 member\n.\n")
    assert refused.result() == Answer(b"ERROR no such client: ghost\n")


def test_an_unavailable_backend_passes_on_to_the_session() -> None:
    inner = memory_backend()
    named(inner, name="alice")
    deferred = DeferredBackend(inner)
    done = answer(cast(Backend, deferred), "alice", Who(), b"who", Inbox())
    assert isinstance(done, Pending)
    deferred.fail()
    with pytest.raises(BackendUnavailableError):
        done.result()


def test_a_command_that_is_not_chat_is_a_programming_error() -> None:
    backend = memory_backend()
    named(backend, name="alice")
    with pytest.raises(ValueError, match="not a chat command"):
        answer(backend, "alice", Status(), b"status", Inbox())
