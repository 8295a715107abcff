"""Chat commands carried out against the hub, without sockets."""

from __future__ import annotations

import pytest

from ackchat.chat.dispatch import Answer, answer
from ackchat.chat.hub import ChatHub
from ackchat.protocol.commands import Direct, Join, Nick, Resume, Status, Who, parse_command
from test_hub import Inbox


def test_a_delivered_message_is_acked_with_the_line_as_sent() -> None:
    hub = ChatHub()
    hub.attach("alice", Inbox())
    bob = Inbox()
    hub.attach("bob", bob)
    line = b"/msg bob  hi"
    assert answer(hub, "alice", parse_command(line), line, Inbox(), 0.0) == Answer(
        b"/msg bob  hi ACK\n"
    )
    assert bob.texts() == ["alice>bob:  hi"]


def test_chat_errors_become_error_lines() -> None:
    hub = ChatHub()
    hub.attach("alice", Inbox())
    done = answer(hub, "alice", Direct("ghost", "x"), b"/msg ghost x", Inbox(), 0.0)
    assert done == Answer(b"ERROR no such client: ghost\n")


def test_blocks_and_new_names() -> None:
    hub = ChatHub()
    hub.attach("Client01", Inbox())
    renamed = answer(hub, "Client01", Nick("alice"), b"/nick alice", Inbox(), 0.0)
    assert renamed == Answer(b"You are now alice.\n", "alice")
    joined = answer(hub, "alice", Join("dev"), b"/join dev", Inbox(), 0.0)
    assert joined.reply == b"joined #dev: 1 member\n.\n"
    assert answer(hub, "alice", Who(), b"who", Inbox(), 0.0).reply == (
        b"who: 1 connected\nalice #dev\n.\n"
    )


def test_resume_names_the_identity_taken_back() -> None:
    hub = ChatHub()
    hub.attach("wanderer", Inbox())
    token = hub.token_of("wanderer")
    hub.detach("wanderer", 0.0, hold=True)
    hub.attach("Client02", Inbox())
    done = answer(hub, "Client02", Resume(token), b"/resume x", Inbox(), 1.0)
    assert done.new_name == "wanderer"
    assert done.reply.startswith(b"Resumed: you are wanderer again; 0 missed messages follow")


def test_a_command_that_is_not_chat_is_a_programming_error() -> None:
    hub = ChatHub()
    hub.attach("alice", Inbox())
    with pytest.raises(ValueError, match="not a chat command"):
        answer(hub, "alice", Status(), b"status", Inbox(), 0.0)
