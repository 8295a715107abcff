"""The command parser: which lines are commands and which are messages."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ackchat.protocol.commands import (
    Broadcast,
    Command,
    CommandUsageError,
    Direct,
    Exit,
    Help,
    History,
    InvalidUtf8Error,
    Join,
    Leave,
    Members,
    Message,
    Nick,
    Resume,
    Rooms,
    Say,
    Status,
    Who,
    expects_multiline_reply,
    is_exit,
    is_plain_message,
    parse_command,
)


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"status", Status()),
        (b"STATUS", Status()),
        (b"  status  ", Status()),
        (b"status all", Status(show_all=True)),
        (b"Status   ALL", Status(show_all=True)),
        (b"help", Help()),
        (b"exit", Exit()),
        (b"\texit ", Exit()),
        (b"/help", Help()),
        (b"/status", Status()),
        (b"/STATUS all", Status(show_all=True)),
        (b"/exit", Exit()),
        (b"/Quit", Exit()),
    ],
)
def test_command_words(line: bytes, command: Command) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize("line", [b"quit", b"QUIT", b" quit "])
def test_a_bare_quit_is_a_message_as_in_the_original(line: bytes) -> None:
    assert parse_command(line) == Message(line.decode())
    assert is_plain_message(line)


@pytest.mark.parametrize(
    ("line", "usage"),
    [(b"/help me", "/help"), (b"/status some", "/status [all]"), (b"/quit now", "/quit")],
)
def test_slash_command_words_take_no_other_arguments(line: bytes, usage: str) -> None:
    with pytest.raises(CommandUsageError, match=re.escape(f"usage: {usage}")):
        parse_command(line)


@pytest.mark.parametrize(
    ("line", "leaves"),
    [(b"exit", True), (b" /EXIT ", True), (b"/quit", True), (b"quit", False), (b"auth x", False)],
)
def test_is_exit_knows_every_spelling_of_leaving(line: bytes, leaves: bool) -> None:
    assert is_exit(line) is leaves


@pytest.mark.parametrize(
    "line",
    [b"Hello, Server!", b"", b" ", b"status please", b"exit now", b"statusall", b"exits"],
)
def test_everything_else_is_a_message_kept_exactly(line: bytes) -> None:
    assert parse_command(line) == Message(line.decode())


def test_a_long_line_padded_around_a_keyword_is_a_message() -> None:
    line = b" " * 40 + b"exit"
    assert parse_command(line) == Message(line.decode())


def test_utf8_text_is_decoded() -> None:
    assert parse_command("héllo wörld ✓".encode()) == Message("héllo wörld ✓")


def test_invalid_utf8_raises_the_documented_error() -> None:
    with pytest.raises(InvalidUtf8Error, match="byte 1"):
        parse_command(b"a\xff")


def test_which_replies_are_blocks() -> None:
    assert expects_multiline_reply(Status())
    assert expects_multiline_reply(Help())
    assert not expects_multiline_reply(Exit())
    assert not expects_multiline_reply(Message("status?"))


@settings(max_examples=300, deadline=None)
@given(
    line=st.one_of(
        st.binary(max_size=100),
        st.sampled_from([b"/msg", b"/join", b"/history", b"/nick"]).flatmap(
            lambda word: st.binary(max_size=40).map(lambda rest: word + b" " + rest)
        ),
    ).filter(lambda data: b"\n" not in data)
)
def test_any_line_parses_or_raises_only_the_documented_error(line: bytes) -> None:
    try:
        command = parse_command(line)
    except InvalidUtf8Error:
        with pytest.raises(UnicodeDecodeError):
            line.decode("utf-8")
        return
    except CommandUsageError:
        assert line.startswith(b"/")
        return
    if isinstance(command, Message):
        assert command.text.encode() == line


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"/msg bob hi  there", Direct("bob", "hi  there")),
        (b"/MSG bob x", Direct("bob", "x")),
        (b"/all hello all", Broadcast("hello all")),
        (b"/say #dev ship it", Say("#dev", "ship it")),
        (b"/join dev", Join("dev")),
        (b"/leave #dev", Leave("#dev")),
        (b"/rooms", Rooms()),
        (b"/members dev", Members("dev")),
        (b"/who", Who()),
        (b"who", Who()),
        (b"/nick alice", Nick("alice")),
        (b"/nick  John Smith ", Nick("John Smith")),  # Refused by the name rules, not usage.
        (b"/history dev", History("dev", None, 20)),
        (b"/history direct 5", History("direct", None, 5)),
        (b"/history #dev before 42 10", History("#dev", 42, 10)),
        (b"/history dev 9999", History("dev", None, 200)),
        (b"/resume abc", Resume("abc")),
    ],
)
def test_chat_commands(line: bytes, command: Command) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"/msg bob", "usage: /msg <name> <text>"),
        (b"/all", "usage: /all <text>"),
        (b"/join", "usage: /join <room>"),
        (b"/join a b", "usage: /join <room>"),
        (b"/nick  ", "usage: /nick <name>"),
        (b"/rooms now", "usage: /rooms"),
        (b"/history dev before x", "usage: /history"),
        (b"/history dev 1 2", "usage: /history"),
        (b"/shout hi", "unknown command /shout"),
    ],
)
def test_malformed_chat_commands_explain_their_usage(line: bytes, message: str) -> None:
    with pytest.raises(CommandUsageError, match=re.escape(message)):
        parse_command(line)


@settings(max_examples=500, deadline=None)
@given(
    line=st.one_of(
        st.binary(max_size=40),
        st.text(alphabet=" \t\u00a0\u2003/sShHeEwWaAlLtTuxyz", max_size=20).map(str.encode),
        st.sampled_from(
            [b"status", b" Status ", b"\xc2\xa0exit", b"help me", b"/who", b"who", b"\x1cwho"]
        ),
    ).filter(lambda data: b"\n" not in data)
)
def test_the_fast_check_agrees_with_the_parser(line: bytes) -> None:
    try:
        expected = type(parse_command(line)) is Message
    except ValueError:
        expected = False
    assert is_plain_message(line) is expected
