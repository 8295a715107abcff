"""Which reply each line from the server belongs to: the client's core, without I/O.

The server answers lines in the order they were sent: ``status``, ``status all`` and
``help`` with a block that ends in a lone ``.`` (content lines that start with a dot get
one more), ``exit`` with one goodbye line before it closes, anything else with one line.
Any reply may instead be a single ``ERROR ...`` line. The greeting is a block too, or a
single line when the server is full. Told what the client sent, :class:`ReplyTracker`
turns each received line into an event. Lines that arrive while no reply is due are
notices; one that overtakes a reply (the server shutting down mid-answer) is taken as
part of that reply, which does not change what is shown, and the close that follows is
what the client acts on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, auto

from ackchat.protocol.commands import (
    Exit,
    InvalidUtf8Error,
    expects_multiline_reply,
    parse_command,
)
from ackchat.protocol.replies import END_OF_BLOCK, ERROR_PREFIX, GREETING_PREFIX, SERVER_FULL


@dataclass(frozen=True, slots=True)
class Greeting:
    """The first line of the greeting block, with the name the server gave us."""

    text: str
    name: str


@dataclass(frozen=True, slots=True)
class ServerFull:
    """The server had no slot for us; it closes the connection next."""

    text: str


@dataclass(frozen=True, slots=True)
class UnexpectedFirstLine:
    """The first line was neither a greeting nor "server full": not an ackchat server."""

    text: str


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """A line of a reply, as it should be shown (a block's content lines un-stuffed)."""

    text: str


@dataclass(frozen=True, slots=True)
class EndOfBlock:
    """The ``.`` that ends a block: nothing to show, but the block's reply is complete."""


@dataclass(frozen=True, slots=True)
class Goodbye:
    """The reply to ``exit``; the server closes the connection next."""

    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A line the server sent on its own, while no reply was due."""

    text: str


Event = Greeting | ServerFull | UnexpectedFirstLine | ReplyLine | EndOfBlock | Goodbye | Notice


class _Reply(Enum):
    """The shape of a reply that is due."""

    GREETING = auto()
    LINE = auto()
    BLOCK = auto()
    GOODBYE = auto()


class ReplyTracker:
    """Turns the server's lines into events, knowing which replies are still due."""

    def __init__(self) -> None:
        self._due: deque[_Reply] = deque([_Reply.GREETING])
        self._in_block = False
        self._exit_sent = False

    @property
    def awaiting_reply(self) -> bool:
        """Whether a reply (the greeting included) has not been received in full."""
        return bool(self._due)

    @property
    def exit_sent(self) -> bool:
        """Whether ``exit`` was sent, after which the server reads nothing more."""
        return self._exit_sent

    def sent(self, line: bytes) -> None:
        """Note a line sent to the server (without its line ending): its reply is now due."""
        if self._exit_sent:
            raise ValueError("nothing can be sent after exit")
        try:
            command = parse_command(line)
        except InvalidUtf8Error:
            self._due.append(_Reply.LINE)
            return
        if isinstance(command, Exit):
            self._exit_sent = True
            self._due.append(_Reply.GOODBYE)
        elif expects_multiline_reply(command):
            self._due.append(_Reply.BLOCK)
        else:
            self._due.append(_Reply.LINE)

    def received(self, text: str) -> Event:
        """The event for the next line from the server (without its line ending)."""
        if not self._due:
            return Notice(text)
        if self._in_block:
            return self._block_line(text)
        reply = self._due[0]
        if reply is _Reply.GREETING:
            return self._first_line(text)
        # An error line stands for the whole reply, whatever its shape would have been.
        if reply is _Reply.BLOCK and not text.startswith(ERROR_PREFIX):
            self._in_block = True
            return ReplyLine(text)
        self._due.popleft()
        if reply is _Reply.GOODBYE and not text.startswith(ERROR_PREFIX):
            return Goodbye(text)
        return ReplyLine(text)

    def _block_line(self, text: str) -> Event:
        """A line inside a block: its end, or content with one stuffed dot removed."""
        if text == END_OF_BLOCK:
            self._in_block = False
            self._due.popleft()
            return EndOfBlock()
        return ReplyLine(text[1:] if text.startswith("..") else text)

    def _first_line(self, text: str) -> Event:
        """The first line from the server: a greeting block begins, or it is all we get."""
        if text.startswith(GREETING_PREFIX) and text.endswith("."):
            self._in_block = True
            return Greeting(text, text.removeprefix(GREETING_PREFIX).removesuffix("."))
        self._due.popleft()
        if text == SERVER_FULL:
            return ServerFull(text)
        return UnexpectedFirstLine(text)
