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

Before the greeting the server may instead refuse the connection, or ask for a password
(:class:`PasswordRequired`). The client then sends ``auth <password>`` (noted with
:meth:`ReplyTracker.sent_password`, which never sees the password), and the answer is the
greeting, "server full", a :class:`WrongPassword` that asks again, or :class:`AuthFailed`.
Until the greeting, a line that ends the connection (a refusal, a timeout, shutdown) is
recognised whenever it comes, even while no reply is due.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, auto

from ackchat.protocol.commands import (
    CommandUsageError,
    Exit,
    InvalidUtf8Error,
    expects_multiline_reply,
    parse_command,
)
from ackchat.protocol.replies import (
    AUTH_REQUIRED,
    AUTH_TIMEOUT,
    END_OF_BLOCK,
    ERROR_PREFIX,
    GREETING_PREFIX,
    SERVER_FULL,
    TOO_MANY_WRONG_PASSWORDS,
)

# The starts of lines that replies.refused() and replies.wrong_password() format.
REFUSED_PREFIX = "Connection refused: "
WRONG_PASSWORD_PREFIX = f"{ERROR_PREFIX}wrong password "
# Every line the server sends on its own just before closing ends so (docs/PROTOCOL.md).
FAREWELL_SUFFIX = " Goodbye."


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
class Refused:
    """The server's address policy turned us away; it closes the connection next."""

    text: str


@dataclass(frozen=True, slots=True)
class PasswordRequired:
    """The server wants ``auth <password>`` before it greets us."""

    text: str


@dataclass(frozen=True, slots=True)
class WrongPassword:
    """The password was wrong; another may be sent."""

    text: str


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """Too many wrong passwords, or none in time; the server closes the connection next."""

    text: str


@dataclass(frozen=True, slots=True)
class Farewell:
    """The server ends the connection before greeting us (shutdown, a timeout)."""

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


Event = (
    Greeting
    | ServerFull
    | Refused
    | PasswordRequired
    | WrongPassword
    | AuthFailed
    | Farewell
    | UnexpectedFirstLine
    | ReplyLine
    | EndOfBlock
    | Goodbye
    | Notice
)


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
        self._greeted = False
        self._password_asked = False
        self._password_due = False

    @property
    def awaiting_reply(self) -> bool:
        """Whether a reply (the greeting included) has not been received in full."""
        return bool(self._due)

    @property
    def password_due(self) -> bool:
        """Whether the server asked for a password and none has been sent since."""
        return self._password_due

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
        except (InvalidUtf8Error, CommandUsageError):
            self._due.append(_Reply.LINE)  # The server answers with one error line.
            return
        if isinstance(command, Exit):
            self._exit_sent = True
            self._due.append(_Reply.GOODBYE)
        elif expects_multiline_reply(command):
            self._due.append(_Reply.BLOCK)
        else:
            self._due.append(_Reply.LINE)

    def sent_password(self) -> None:
        """Note that ``auth <password>`` was sent: the greeting (or a refusal) is due again."""
        if not self._password_due:
            raise ValueError("the server has not asked for a password")
        self._password_due = False
        self._due.append(_Reply.GREETING)

    def received(self, text: str) -> Event:
        """The event for the next line from the server (without its line ending)."""
        if self._in_block:
            return self._block_line(text)
        if not self._greeted and (ending := self._ending(text)) is not None:
            self._due.clear()
            self._password_due = False
            return ending
        if not self._due:
            return Notice(text)
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
        """The line in place of the greeting: the greeting itself, or a request for a password."""
        if text.startswith(GREETING_PREFIX) and text.endswith("."):
            self._in_block = True
            self._greeted = True
            return Greeting(text, text.removeprefix(GREETING_PREFIX).removesuffix("."))
        self._due.popleft()
        if text == AUTH_REQUIRED:
            self._password_asked = self._password_due = True
            return PasswordRequired(text)
        if self._password_asked and text.startswith(WRONG_PASSWORD_PREFIX):
            self._password_due = True
            return WrongPassword(text)
        return UnexpectedFirstLine(text)

    @staticmethod
    def _ending(text: str) -> Event | None:
        """The event for a line that ends the connection before the greeting, if it is one."""
        if text == SERVER_FULL:
            return ServerFull(text)
        if text.startswith(REFUSED_PREFIX):
            return Refused(text)
        if text in (TOO_MANY_WRONG_PASSWORDS, AUTH_TIMEOUT):
            return AuthFailed(text)
        if text.endswith(FAREWELL_SUFFIX):
            return Farewell(text)
        return None
