"""The client's reply tracker: which reply each server line belongs to, without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ackchat.client.core import (
    AuthFailed,
    EndOfBlock,
    Event,
    Farewell,
    Goodbye,
    Greeting,
    Notice,
    PasswordRequired,
    Refused,
    ReplyLine,
    ReplyTracker,
    ServerFull,
    UnexpectedFirstLine,
    WrongPassword,
)
from ackchat.protocol import replies
from ackchat.protocol.commands import CommandUsageError, Message, parse_command
from ackchat.protocol.framing import LineTooLong

WELCOME = "Welcome! You are Client01."
STATUS_HEADER = "status: 1 of 3 clients connected, 1 seen, 0 rejected (server full)"


def wire_lines(wire: bytes) -> list[str]:
    """The lines of what the server wrote, without their line endings."""
    assert wire.endswith(b"\n")
    return wire.decode().split("\n")[:-1]


def feed(tracker: ReplyTracker, wire: bytes) -> list[Event]:
    return [tracker.received(text) for text in wire_lines(wire)]


def greeted() -> ReplyTracker:
    """A tracker that has read the whole greeting."""
    tracker = ReplyTracker()
    feed(tracker, replies.greeting("Client01"))
    assert not tracker.awaiting_reply
    return tracker


def test_the_greeting_is_due_before_anything_is_sent() -> None:
    tracker = ReplyTracker()
    assert tracker.awaiting_reply
    assert not tracker.exit_sent


def test_the_greeting_gives_the_name_and_its_block_completes() -> None:
    tracker = ReplyTracker()
    events = feed(tracker, replies.greeting("Client07"))
    assert events == [
        Greeting("Welcome! You are Client07.", "Client07"),
        ReplyLine("Every line you send comes back with ACK. Type 'help' for the commands."),
        EndOfBlock(),
    ]
    assert not tracker.awaiting_reply


def test_server_full_is_the_whole_first_reply() -> None:
    tracker = ReplyTracker()
    assert tracker.received(replies.SERVER_FULL) == ServerFull(replies.SERVER_FULL)
    assert not tracker.awaiting_reply


@pytest.mark.parametrize(
    "text", ["SSH-2.0-OpenSSH_9.6", "Welcome! You are Client01", "", "ERROR go away"]
)
def test_any_other_first_line_is_unexpected(text: str) -> None:
    tracker = ReplyTracker()
    assert tracker.received(text) == UnexpectedFirstLine(text)
    assert not tracker.awaiting_reply


def test_a_message_is_answered_by_one_line() -> None:
    tracker = greeted()
    tracker.sent(b"Hello, Server!")
    assert tracker.awaiting_reply
    assert feed(tracker, replies.ack("Hello, Server!")) == [ReplyLine("Hello, Server! ACK")]
    assert not tracker.awaiting_reply


@pytest.mark.parametrize("line", [b"status", b" Status  ALL ", b"HELP"])
def test_a_block_hides_its_end_and_unstuffs_its_content(line: bytes) -> None:
    tracker = greeted()
    tracker.sent(line)
    body = [".", "..x", ".y", "plain", ""]
    wire = replies.encode_lines(replies.block_lines(STATUS_HEADER, body))
    events = feed(tracker, wire)
    assert events == [
        ReplyLine(STATUS_HEADER),
        *[ReplyLine(text) for text in body],
        EndOfBlock(),
    ]
    assert not tracker.awaiting_reply


def test_the_help_block_shows_exactly_the_help_lines() -> None:
    tracker = greeted()
    tracker.sent(b"help")
    events = feed(tracker, replies.help_reply())
    assert events == [ReplyLine("help:"), *map(ReplyLine, replies.HELP_LINES), EndOfBlock()]


def test_a_block_is_due_until_its_end_arrives() -> None:
    tracker = greeted()
    tracker.sent(b"status")
    for text in (STATUS_HEADER, "Client01 127.0.0.1:5 connected", ".."):
        tracker.received(text)
        assert tracker.awaiting_reply
    tracker.received(".")
    assert not tracker.awaiting_reply


def test_exit_is_answered_by_the_goodbye_and_ends_sending() -> None:
    tracker = greeted()
    tracker.sent(b"  EXIT ")
    assert tracker.exit_sent
    assert feed(tracker, replies.goodbye("Client01")) == [Goodbye("Goodbye, Client01.")]
    assert not tracker.awaiting_reply
    with pytest.raises(ValueError, match="after exit"):
        tracker.sent(b"Hello?")


@pytest.mark.parametrize("line", [b"/nosuch", b"/msg", b"/join a b"])
def test_a_malformed_chat_command_is_answered_by_one_error_line(line: bytes) -> None:
    tracker = greeted()
    tracker.sent(line)
    assert tracker.received("ERROR usage: /msg <name> <text>") == ReplyLine(
        "ERROR usage: /msg <name> <text>"
    )
    assert not tracker.awaiting_reply


def test_a_line_that_is_not_utf8_is_answered_by_one_error_line() -> None:
    tracker = greeted()
    tracker.sent(b"caf\xe9")
    assert tracker.received(replies.INVALID_UTF8) == ReplyLine(replies.INVALID_UTF8)
    assert not tracker.awaiting_reply


@pytest.mark.parametrize("line", [b"status", b"help", b"exit", b"x" * 100])
def test_one_error_line_answers_any_command(line: bytes) -> None:
    tracker = greeted()
    tracker.sent(line)
    error = replies.line_too_long(LineTooLong(len(line), 4))
    assert feed(tracker, error) == [ReplyLine(wire_lines(error)[0])]
    assert not tracker.awaiting_reply


def test_lines_that_arrive_while_no_reply_is_due_are_notices() -> None:
    tracker = greeted()
    assert tracker.received("hello?") == Notice("hello?")
    tracker.sent(b"a")
    tracker.received("a ACK")
    assert tracker.received("more") == Notice("more")
    assert not tracker.awaiting_reply


@pytest.mark.parametrize("reply_due", [False, True])
def test_a_goodbye_of_the_server_is_a_farewell_even_while_a_reply_is_due(reply_due: bool) -> None:
    tracker = greeted()
    if reply_due:
        tracker.sent(b"a")
    idle = wire_lines(replies.idle_timeout(30))[0]
    assert tracker.received(idle) == Farewell(idle)
    assert tracker.farewell == idle
    assert tracker.awaiting_reply is reply_due


def test_pipelined_replies_are_matched_in_order() -> None:
    tracker = greeted()
    sent = [b"a", b"status", b".b", b"help", b"exit"]
    for line in sent:
        tracker.sent(line)
    wire = b"".join(
        [
            replies.ack("a"),
            replies.encode_lines(replies.block_lines(STATUS_HEADER, ["Client01 here"])),
            replies.ack(".b"),
            replies.help_reply(),
            replies.goodbye("Client01"),
        ]
    )
    lines = wire_lines(wire)
    events = []
    for text in lines[:-1]:
        events.append(tracker.received(text))
        assert tracker.awaiting_reply
    events.append(tracker.received(lines[-1]))
    assert not tracker.awaiting_reply
    assert events == [
        ReplyLine("a ACK"),
        ReplyLine(STATUS_HEADER),
        ReplyLine("Client01 here"),
        EndOfBlock(),
        ReplyLine(".b ACK"),
        ReplyLine("help:"),
        *map(ReplyLine, replies.HELP_LINES),
        EndOfBlock(),
        Goodbye("Goodbye, Client01."),
    ]


# Before the greeting: refusals and passwords


def asked_for_a_password() -> ReplyTracker:
    """A tracker that has read the server's password request."""
    tracker = ReplyTracker()
    assert tracker.received(replies.AUTH_REQUIRED) == PasswordRequired(replies.AUTH_REQUIRED)
    return tracker


def the_line(wire: bytes) -> str:
    [text] = wire_lines(wire)
    return text


@pytest.mark.parametrize(
    "reason",
    [
        "address not allowed",
        "too many connections from this address",
        "connecting too fast from this address",
    ],
)
def test_a_refusal_is_the_whole_first_reply(reason: str) -> None:
    tracker = ReplyTracker()
    text = the_line(replies.refused(reason))
    assert tracker.received(text) == Refused(text)
    assert not tracker.awaiting_reply


def test_a_password_request_waits_for_the_password() -> None:
    tracker = asked_for_a_password()
    assert tracker.password_due
    assert not tracker.awaiting_reply
    tracker.sent_password()
    assert not tracker.password_due
    assert tracker.awaiting_reply
    assert feed(tracker, replies.greeting("Client01"))[0] == Greeting(WELCOME, "Client01")
    assert not tracker.awaiting_reply
    tracker.sent(b"a")
    assert tracker.received("a ACK") == ReplyLine("a ACK")


def test_a_wrong_password_asks_again_until_the_server_gives_up() -> None:
    tracker = asked_for_a_password()
    for attempt in (1, 2):
        tracker.sent_password()
        text = the_line(replies.wrong_password(attempt, 3))
        assert tracker.received(text) == WrongPassword(text)
        assert tracker.password_due
        assert not tracker.awaiting_reply
    tracker.sent_password()
    assert tracker.received(replies.TOO_MANY_WRONG_PASSWORDS) == AuthFailed(
        replies.TOO_MANY_WRONG_PASSWORDS
    )
    assert not tracker.password_due
    assert not tracker.awaiting_reply


def test_a_wrong_password_and_then_the_right_one() -> None:
    tracker = asked_for_a_password()
    tracker.sent_password()
    text = the_line(replies.wrong_password(1, 3))
    assert tracker.received(text) == WrongPassword(text)
    tracker.sent_password()
    events = feed(tracker, replies.greeting("Client02"))
    assert events[0] == Greeting("Welcome! You are Client02.", "Client02")
    assert events[-1] == EndOfBlock()
    assert not tracker.awaiting_reply


def test_the_server_may_be_full_after_the_password() -> None:
    tracker = asked_for_a_password()
    tracker.sent_password()
    assert tracker.received(replies.SERVER_FULL) == ServerFull(replies.SERVER_FULL)
    assert not tracker.awaiting_reply


@pytest.mark.parametrize("password_sent", [False, True])
def test_the_auth_timeout_ends_the_wait_for_a_password(password_sent: bool) -> None:
    """Whether or not the client is still getting the password when the server gives up."""
    tracker = asked_for_a_password()
    if password_sent:
        tracker.sent_password()
    assert tracker.received(replies.AUTH_TIMEOUT) == AuthFailed(replies.AUTH_TIMEOUT)
    assert not tracker.password_due
    assert not tracker.awaiting_reply


@pytest.mark.parametrize(
    "text",
    [
        replies.SERVER_SHUTTING_DOWN,
        the_line(replies.idle_timeout(30)),
        the_line(replies.line_timeout(30)),
    ],
)
def test_a_goodbye_from_the_server_before_the_greeting_is_a_farewell(text: str) -> None:
    tracker = asked_for_a_password()
    assert tracker.received(text) == Farewell(text)
    assert not tracker.password_due


def test_exit_before_the_password_is_answered_by_a_goodbye() -> None:
    tracker = asked_for_a_password()
    tracker.sent(b"exit")
    assert tracker.received("Goodbye.") == Goodbye("Goodbye.")
    assert not tracker.awaiting_reply


def test_the_password_can_only_be_sent_when_asked_for() -> None:
    with pytest.raises(ValueError, match="not asked for a password"):
        ReplyTracker().sent_password()
    tracker = asked_for_a_password()
    tracker.sent_password()
    with pytest.raises(ValueError, match="not asked for a password"):
        tracker.sent_password()
    with pytest.raises(ValueError, match="not asked for a password"):
        greeted().sent_password()


def test_a_wrong_password_answer_without_a_request_is_unexpected() -> None:
    text = the_line(replies.wrong_password(1, 3))
    assert ReplyTracker().received(text) == UnexpectedFirstLine(text)


@pytest.mark.parametrize(
    "text", [the_line(replies.refused("address not allowed")), replies.AUTH_REQUIRED]
)
def test_after_the_greeting_such_lines_are_notices_or_replies(text: str) -> None:
    tracker = greeted()
    assert tracker.received(text) == Notice(text)
    tracker.sent(b"x")
    assert tracker.received(text) == ReplyLine(text)


# What can travel in one line: any UTF-8 text without a line feed.
line_texts = st.text(st.characters(codec="utf-8", exclude_characters="\n"))


def is_message(text: str) -> bool:
    """Whether the server acknowledges ``text`` (not a command, nor a malformed one)."""
    try:
        return isinstance(parse_command(text.encode()), Message)
    except CommandUsageError:
        return False


messages = line_texts.filter(is_message)
block_bodies = st.lists(line_texts, max_size=5)


@given(st.lists(st.one_of(messages, block_bodies), max_size=8))
def test_any_conversation_fed_line_by_line_shows_what_the_server_meant(
    requests: list[str | list[str]],
) -> None:
    """Messages and blocks (with arbitrary content), then exit: each line at a time."""
    tracker = ReplyTracker()
    wire = [replies.greeting("Client01")]
    expected = [WELCOME, "Every line you send comes back with ACK. Type 'help' for the commands."]
    for request in requests:
        if isinstance(request, str):
            tracker.sent(request.encode())
            wire.append(replies.ack(request))
            expected.append(f"{request} ACK")
        else:
            tracker.sent(b"status")
            wire.append(replies.encode_lines(replies.block_lines(STATUS_HEADER, request)))
            expected += [STATUS_HEADER, *request]
    tracker.sent(b"exit")
    wire.append(replies.goodbye("Client01"))
    expected.append("Goodbye, Client01.")

    shown = []
    for text in wire_lines(b"".join(wire)):
        assert tracker.awaiting_reply
        event = tracker.received(text)
        if not isinstance(event, EndOfBlock):
            shown.append(event.text)
    assert not tracker.awaiting_reply
    assert shown == expected
