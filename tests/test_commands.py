"""The command parser: which lines are commands and which are messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ackchat.protocol.commands import (
    Command,
    Exit,
    Help,
    InvalidUtf8Error,
    Message,
    Status,
    expects_multiline_reply,
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
    ],
)
def test_command_words(line: bytes, command: Command) -> None:
    assert parse_command(line) == command


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
@given(line=st.binary(max_size=100).filter(lambda data: b"\n" not in data))
def test_any_line_parses_or_raises_only_the_documented_error(line: bytes) -> None:
    try:
        command = parse_command(line)
    except InvalidUtf8Error:
        with pytest.raises(UnicodeDecodeError):
            line.decode("utf-8")
        return
    assert isinstance(command, Message | Status | Help | Exit)
    if isinstance(command, Message):
        assert command.text.encode() == line
