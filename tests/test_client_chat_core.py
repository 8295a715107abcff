"""The client's chat logic without I/O: event lines, the tracker among events, completion,
the backoff schedule and what the terminal shows."""

from __future__ import annotations

import itertools

import pytest

from ackchat.client.core import (
    ChatEvent,
    ChatLine,
    Draining,
    EndOfBlock,
    Event,
    Farewell,
    Notice,
    PasswordRequired,
    ReplyLine,
    ReplyTracker,
    parse_draining,
    parse_event,
)
from ackchat.client.directory import COMMAND_WORDS, ChatDirectory
from ackchat.client.display import ALERT, DIRECT, PRESENCE, ROOM, SENDER, fragments, terminal_safe
from ackchat.client.reconnect import backoff_delays
from ackchat.protocol import replies
from ackchat.protocol.commands import parse_command

TIME = "2026-11-25T14:00:05+00:00"
ROOM_LINE = f"@15 {TIME} #dev alice: hello: world"
DIRECT_LINE = f"@12 {TIME} direct alice>bob: just you"
PRESENCE_LINE = f"@14 {TIME} #dev *: carol joined"
WARNING_LINE = "WARNING you are reading slowly: 1000 messages wait for you; at 5000 you will be"


def greeted(token: str | None = "tok-1") -> ReplyTracker:
    tracker = ReplyTracker()
    for text in replies.greeting("Client01", token).decode().splitlines():
        tracker.received(text)
    return tracker


def chat(text: str, replayed: bool = False) -> ChatLine:
    """The tracker event for an event line."""
    event = parse_event(text)
    assert event is not None
    return ChatLine(text, event, replayed)


def feed(tracker: ReplyTracker, texts: list[str]) -> list[Event]:
    return [tracker.received(text) for text in texts]


# Event lines


def test_an_event_line_is_taken_apart_at_the_first_colon_space() -> None:
    assert parse_event(ROOM_LINE) == ChatEvent(15, TIME, "#dev", "alice", "hello: world")


def test_direct_and_presence_events() -> None:
    direct = parse_event(DIRECT_LINE)
    assert direct == ChatEvent(12, TIME, "direct", "alice>bob", "just you")
    assert direct.is_direct
    assert not direct.is_presence
    presence = parse_event(PRESENCE_LINE)
    assert presence is not None
    assert presence.is_presence


@pytest.mark.parametrize(
    "text",
    ["@hello ACK", "@12", f"@x {TIME} all bob: hi", f"@1 {TIME} lobby bob: hi", "hi", ""],
)
def test_other_lines_are_not_events(text: str) -> None:
    assert parse_event(text) is None


# The tracker among events


def test_events_before_a_reply_do_not_take_its_place() -> None:
    tracker = greeted()
    tracker.sent(b"/say dev hi")
    events = feed(tracker, [ROOM_LINE, WARNING_LINE, "/say dev hi ACK"])
    assert events == [
        chat(ROOM_LINE),
        Notice(WARNING_LINE),
        ReplyLine("/say dev hi ACK"),
    ]
    assert not tracker.awaiting_reply


def test_a_message_that_looks_like_an_event_is_still_its_own_reply() -> None:
    tracker = greeted()
    tracker.sent(ROOM_LINE.encode())
    tracker.sent(b"WARNING x")
    events = feed(tracker, [DIRECT_LINE, f"{ROOM_LINE} ACK", "WARNING x ACK"])
    assert isinstance(events[0], ChatLine)
    assert events[1:] == [ReplyLine(f"{ROOM_LINE} ACK"), ReplyLine("WARNING x ACK")]
    assert not tracker.awaiting_reply


def test_event_lines_in_join_history_and_resume_replies_are_replayed_events() -> None:
    tracker = greeted()
    tracker.sent(b"/join dev")
    events = feed(tracker, ["joined #dev: 2 members", ROOM_LINE, "."])
    assert events == [
        ReplyLine("joined #dev: 2 members"),
        chat(ROOM_LINE, replayed=True),
        EndOfBlock(),
    ]


@pytest.mark.parametrize(
    "line", [b"/join dev", b"/rooms", b"/members dev", b"who", b"/history dev"]
)
def test_chat_blocks_may_be_answered_by_one_error(line: bytes) -> None:
    tracker = greeted()
    tracker.sent(line)
    assert tracker.received("ERROR no such room: #dev") == ReplyLine("ERROR no such room: #dev")
    assert not tracker.awaiting_reply


def test_the_reply_line_tells_which_command_it_answers() -> None:
    tracker = greeted()
    tracker.sent(b"who")
    header, content, _ = feed(tracker, ["who: 1 connected", "alice #dev", "."])
    assert isinstance(header, ReplyLine)
    assert header.header
    assert isinstance(content, ReplyLine)
    assert not content.header
    assert content.answers == parse_command(b"who")


def test_the_tracker_follows_the_name_and_keeps_the_resume_token() -> None:
    tracker = greeted("tok-1")
    assert (tracker.name, tracker.resume_token) == ("Client01", "tok-1")
    tracker.sent(b"/nick alice")
    tracker.sent(b"/nick bob")
    feed(tracker, ["You are now alice.", "ERROR name taken: bob"])
    assert tracker.name == "alice"
    tracker.sent(b"/resume tok-0")
    feed(
        tracker, ["Resumed: you are carol again in #dev; 1 missed messages follow", ROOM_LINE, "."]
    )
    assert (tracker.name, tracker.resume_token) == ("carol", "tok-1")


def test_a_farewell_while_events_flow_is_remembered() -> None:
    tracker = greeted()
    assert tracker.farewell == ""
    assert tracker.received(replies.SERVER_SHUTTING_DOWN) == Farewell(replies.SERVER_SHUTTING_DOWN)
    assert tracker.farewell == replies.SERVER_SHUTTING_DOWN


def test_a_drain_notice_is_noted_with_its_address_whether_a_reply_is_due_or_not() -> None:
    tracker = greeted()
    text = replies.draining("[::1]:1235").decode().rstrip("\n")
    assert tracker.received(text) == Draining(text, ("::1", 1235))
    assert tracker.draining == Draining(text, ("::1", 1235))
    tracker = greeted()
    tracker.sent(b"hello")
    plain = replies.draining().decode().rstrip("\n")
    assert tracker.received(plain) == Draining(plain)
    assert tracker.awaiting_reply
    assert tracker.received("hello ACK") == ReplyLine("hello ACK")
    assert tracker.draining == Draining(plain)


def test_a_drain_notice_before_the_greeting_ends_the_wait_for_it() -> None:
    tracker = ReplyTracker()
    assert tracker.received(replies.AUTH_REQUIRED) == PasswordRequired(replies.AUTH_REQUIRED)
    text = "Server draining: please reconnect to chat.example.org:1234."
    assert tracker.received(text) == Draining(text, ("chat.example.org", 1234))
    assert not tracker.awaiting_reply


@pytest.mark.parametrize(
    "text",
    [
        "Server draining: please reconnect",
        "Server draining: please reconnect to nowhere.",
        "Server draining: please reconnect to host:0.",
        "Server draining: please reconnect to ::1:1234.",
    ],
)
def test_lines_that_only_look_like_a_drain_notice_are_not_one(text: str) -> None:
    assert parse_draining(text) is None
    tracker = greeted()
    assert tracker.received(text) == Notice(text)
    assert tracker.draining is None


def test_an_event_whose_text_ends_in_goodbye_is_an_event() -> None:
    text = f"@3 {TIME} all bob: See you. Goodbye."
    tracker = greeted()
    assert isinstance(tracker.received(text), ChatLine)
    assert tracker.farewell == ""


# Completion


def learned() -> ChatDirectory:
    directory = ChatDirectory()
    tracker = greeted()
    tracker.sent(b"who")
    tracker.sent(b"/rooms")
    lines = ["who: 2 connected", "alice #dev", "Client01", ".", "rooms: 1", "#dev 2", "."]
    lines += [DIRECT_LINE, f"@20 {TIME} #ops *: dave is now Dave2", f"@21 {TIME} all erin: hi"]
    for event in feed(tracker, lines):
        directory.observe(event)
    return directory


def test_names_and_rooms_are_learned_from_replies_and_events() -> None:
    directory = learned()
    assert directory.names == ["alice", "bob", "Client01", "Dave2", "erin"]
    assert directory.rooms == ["#dev", "#ops"]


def test_a_who_reply_replaces_the_names_known() -> None:
    directory = learned()
    tracker = greeted()
    tracker.sent(b"who")
    for event in feed(tracker, ["who: 1 connected", "zed", "."]):
        directory.observe(event)
    assert directory.names == ["zed"]


def test_the_first_word_completes_to_command_words() -> None:
    directory = ChatDirectory()
    assert directory.complete("") == list(COMMAND_WORDS)
    assert directory.complete("/m") == ["/members", "/msg"]
    assert directory.complete("WH") == ["who"]


def test_the_slash_spellings_of_the_command_words_complete() -> None:
    directory = ChatDirectory()
    assert directory.complete("/q") == ["/quit"]
    assert directory.complete("/e") == ["/exit"]
    assert directory.complete("/h") == ["/help", "/history"]
    assert directory.complete("/st") == ["/status"]
    for word in ("/help", "/status", "/exit", "/quit"):
        parse_command(word.encode())  # The server takes each of them.


def test_names_complete_after_msg_without_our_own() -> None:
    directory = learned()
    assert directory.complete("/msg ", own_name="Client01") == ["alice", "bob", "Dave2", "erin"]
    assert directory.complete("/MSG a") == ["alice"]
    assert directory.complete("/msg alice hel") == []


@pytest.mark.parametrize("command", ["/join", "/say", "/leave", "/members"])
def test_rooms_complete_after_room_commands_with_or_without_the_hash(command: str) -> None:
    directory = learned()
    assert directory.complete(f"{command} ") == ["#dev", "#ops"]
    assert directory.complete(f"{command} o") == ["#ops"]
    assert directory.complete(f"{command} #d") == ["#dev"]
    assert directory.complete(f"/nick {command}") == []


def test_history_completes_rooms_and_direct() -> None:
    assert learned().complete("/history d") == ["#dev", "direct"]


# Backoff


def test_the_delays_double_up_to_the_cap_without_jitter() -> None:
    delays = list(backoff_delays(60, lambda: 1.0))
    assert delays[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert set(delays[5:]) == {10.0}
    assert sum(delays) <= 60 < sum(delays) + 10


def test_jitter_keeps_each_delay_between_half_and_all_of_its_step() -> None:
    values = itertools.cycle([0.0, 0.5, 0.99])
    delays = list(backoff_delays(30, lambda: next(values)))
    steps = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    for delay, step in zip(delays, steps, strict=False):
        assert step / 2 <= delay <= step
    assert sum(delays) <= 30


def test_no_time_means_no_attempt() -> None:
    assert list(backoff_delays(0, lambda: 0.0)) == []


def test_no_time_limit_means_attempts_without_end() -> None:
    delays = list(itertools.islice(backoff_delays(None, lambda: 1.0), 1000))
    assert len(delays) == 1000
    assert delays[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert max(delays) == 10.0


# Display


def test_control_characters_never_reach_the_terminal() -> None:
    assert terminal_safe("a\x1b[2Jb\rc\u202ed\te") == "a\ufffd[2Jb\ufffdc\ufffdd\ufffde"
    assert terminal_safe("plain ünïcode") == "plain ünïcode"


def test_chat_events_are_styled_by_scope_with_the_sender_bold() -> None:
    room = fragments(chat(ROOM_LINE))
    assert room == [
        ("class:time", "14:00:05 "),
        (ROOM, "#dev "),
        (f"{ROOM} {SENDER}", "alice"),
        ("", ": hello: world"),
    ]
    direct = fragments(chat(DIRECT_LINE))
    assert (f"{DIRECT} {SENDER}", "alice") in direct
    presence = fragments(chat(PRESENCE_LINE))
    assert presence[1] == (PRESENCE, "#dev carol joined")


def test_errors_warnings_and_goodbyes_are_alerts_and_replies_plain() -> None:
    assert fragments(ReplyLine("ERROR no such client: x")) == [(ALERT, "ERROR no such client: x")]
    assert fragments(Notice(WARNING_LINE)) == [(ALERT, WARNING_LINE)]
    assert fragments(Farewell("Server is shutting down. Goodbye."))[0][0] == ALERT
    assert fragments(Draining("Server draining: please reconnect."))[0][0] == ALERT
    assert fragments(ReplyLine("hi ACK")) == [("", "hi ACK")]
    assert fragments(EndOfBlock()) == []


def test_an_event_text_with_control_characters_is_made_safe() -> None:
    event = ChatEvent(1, TIME, "all", "bob", "x\x1b]0;pwned\x07")
    shown = "".join(text for _, text in fragments(ChatLine("", event)))
    assert "\x1b" not in shown
    assert "\x07" not in shown
