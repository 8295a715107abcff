"""Which reply each line from the server belongs to: the client's core, without I/O.

The server answers lines in the order they were sent: ``status``, ``status all`` and
``help`` with a block that ends in a lone ``.`` (content lines that start with a dot get
one more), ``exit`` with one goodbye line before it closes, anything else with one line.
Any reply may instead be a single ``ERROR ...`` line. The greeting is a block too, or a
single line when the server is full. Told what the client sent, :class:`ReplyTracker`
turns each received line into an event. Lines that arrive while no reply is due are
notices.

Before the greeting the server may instead refuse the connection, or ask for a password
(:class:`PasswordRequired`). The client then sends ``auth <password>`` (noted with
:meth:`ReplyTracker.sent_password`, which never sees the password), and the answer is the
greeting, "server full", a :class:`WrongPassword` that asks again, or :class:`AuthFailed`.
Until the greeting, a line that ends the connection (a refusal, a timeout, shutdown) is
recognised whenever it comes, even while no reply is due.

Once greeted, other clients' messages arrive between replies as event lines
(``@<id> <time> <scope> <from>: <text>``), and the server may warn (``WARNING ...``) or
say goodbye (a line ending in `` Goodbye.``) at any time, or tell the client to reconnect
because it drains (:class:`Draining`, possibly naming another address). None of these is
taken as the reply that is due, unless it is exactly the echo that reply will be: a
message that looks like an event line is still acknowledged with its own text. The
tracker also follows the client's name (greeting, ``/nick``, ``/resume``), the greeting's
resume token and whether the server drains.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from enum import Enum, auto

from ackchat.protocol.commands import (
    Broadcast,
    Command,
    CommandUsageError,
    Direct,
    Exit,
    History,
    InvalidUtf8Error,
    Join,
    Message,
    Nick,
    Resume,
    Say,
    expects_multiline_reply,
    parse_command,
)
from ackchat.protocol.replies import (
    ACK_SUFFIX,
    AUTH_REQUIRED,
    AUTH_TIMEOUT,
    DRAINING_PREFIX,
    END_OF_BLOCK,
    ERROR_PREFIX,
    GREETING_PREFIX,
    REFUSED_PREFIX,
    RESUME_PREFIX,
    SERVER_FULL,
    TOO_MANY_WRONG_PASSWORDS,
    WRONG_PASSWORD_PREFIX,
)

# The starts of lines that replies.refused() and replies.wrong_password() format.
# Every line the server sends on its own just before closing ends so (docs/PROTOCOL.md).
FAREWELL_SUFFIX = " Goodbye."
EVENT_PREFIX = "@"
WARNING_PREFIX = "WARNING "
PRESENCE_SENDER = "*"
RENAMED_PREFIX = "You are now "
RESUMED_PREFIX = "Resumed: you are "

# @<id> <time> <scope> <from>: <text>; names hold no space, ">" or ":" (docs/PROTOCOL.md).
_EVENT_LINE = re.compile(r"@(\d+) (\S+) (direct|all|#\S+) ([^\s:]+): (.*)", re.DOTALL)
_RESUMED = re.compile(r"Resumed: you are (\S+) again\b")
# The drain notice, with the address to reconnect to if it names one (docs/PROTOCOL.md).
_DRAINING = re.compile(
    re.escape(DRAINING_PREFIX) + r"(?: to (?:\[([0-9A-Fa-f:.]+)\]|([^\s:\[\]]+)):(\d{1,5}))?\."
)
# The replies whose block content lines are event lines.
_REPLAYING = (Join, History, Resume)


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One chat event line, taken apart: who wrote what, where, and when."""

    id: int
    time: str
    scope: str
    sender: str
    text: str

    @property
    def is_presence(self) -> bool:
        """Whether the server wrote it about a client (joined, left, renamed...)."""
        return self.sender == PRESENCE_SENDER

    @property
    def is_direct(self) -> bool:
        """Whether it is a direct message (``sender>recipient``)."""
        return self.scope == "direct"


def parse_event(text: str) -> ChatEvent | None:
    """The chat event a line stands for, or None if it is not an event line."""
    match = _EVENT_LINE.fullmatch(text)
    if match is None:
        return None
    number, time, scope, sender, message = match.groups()
    return ChatEvent(int(number), time, scope, sender, message)


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
    """The server ends the connection on its own (shutdown, a timeout); it closes next."""

    text: str


@dataclass(frozen=True, slots=True)
class Draining:
    """The server drains: the client should reconnect, to ``redirect`` if it names one.

    The connection stays open meanwhile; the session is held for ``/resume`` once the
    client goes without ``exit``.
    """

    text: str
    # (host, port) to reconnect to; None: the address used before.
    redirect: tuple[str, int] | None = None


def parse_draining(text: str) -> Draining | None:
    """The drain notice ``text`` stands for, or None if it is not one."""
    match = _DRAINING.fullmatch(text)
    if match is None:
        return None
    v6_host, host, port = match.groups()
    if port is None:
        return Draining(text)
    number = int(port)
    if not 0 < number < 65536:
        return None
    return Draining(text, (v6_host or host, number))


@dataclass(frozen=True, slots=True)
class UnexpectedFirstLine:
    """The first line was neither a greeting nor "server full": not an ackchat server."""

    text: str


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """A line of a reply, as it should be shown (a block's content lines un-stuffed).

    ``answers`` is the command it answers (None for the greeting), ``header`` whether it
    is a reply's first line; both are context, not part of the line's identity.
    """

    text: str
    answers: Command | None = field(default=None, compare=False)
    header: bool = field(default=True, compare=False)


@dataclass(frozen=True, slots=True)
class ChatLine:
    """An event line: sent by another client, or replayed in a reply (``replayed``)."""

    text: str
    event: ChatEvent
    replayed: bool = False


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
    | Draining
    | UnexpectedFirstLine
    | ReplyLine
    | ChatLine
    | EndOfBlock
    | Goodbye
    | Notice
)


def line_text(event: Event) -> str:
    """The text of the line an event stands for (``.`` for the end of a block)."""
    return END_OF_BLOCK if isinstance(event, EndOfBlock) else event.text


class _Reply(Enum):
    """The shape of a reply that is due."""

    GREETING = auto()
    LINE = auto()
    BLOCK = auto()
    GOODBYE = auto()


@dataclass(frozen=True, slots=True)
class _Due:
    """A reply that is due: its shape, the command it answers, and its echo if it is one."""

    shape: _Reply
    command: Command | None = None
    echo: str | None = None


# The commands answered by the line as sent with " ACK" appended.
_ECHOED = (Message, Direct, Broadcast, Say)


class ReplyTracker:
    """Turns the server's lines into events, knowing which replies are still due."""

    def __init__(self) -> None:
        self._due: deque[_Due] = deque([_Due(_Reply.GREETING)])
        self._in_block = False
        self._exit_sent = False
        self._greeted = False
        self._password_asked = False
        self._password_due = False
        self._name = ""
        self._resume_token = ""
        self._farewell = ""
        self._draining: Draining | None = None

    @property
    def name(self) -> str:
        """Our name: the greeting's, then the one ``/nick`` or ``/resume`` gave ("" before)."""
        return self._name

    @property
    def resume_token(self) -> str:
        """The resume token the greeting carried ("" if none, or not yet received)."""
        return self._resume_token

    @property
    def farewell(self) -> str:
        """The line with which the server said it was closing the connection ("" if none)."""
        return self._farewell

    @property
    def draining(self) -> Draining | None:
        """The server's drain notice, once it sent one (None before)."""
        return self._draining

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
            self._due.append(_Due(_Reply.LINE))  # The server answers with one error line.
            return
        if isinstance(command, Exit):
            self._exit_sent = True
            self._due.append(_Due(_Reply.GOODBYE, command))
        elif expects_multiline_reply(command):
            self._due.append(_Due(_Reply.BLOCK, command))
        elif isinstance(command, _ECHOED):
            self._due.append(_Due(_Reply.LINE, command, line.decode() + ACK_SUFFIX))
        else:
            self._due.append(_Due(_Reply.LINE, command))

    def sent_password(self) -> None:
        """Note that ``auth <password>`` was sent: the greeting (or a refusal) is due again."""
        if not self._password_due:
            raise ValueError("the server has not asked for a password")
        self._password_due = False
        self._due.append(_Due(_Reply.GREETING))

    def received(self, text: str) -> Event:
        """The event for the next line from the server (without its line ending)."""
        if self._in_block:
            return self._block_line(text)
        if not self._greeted:
            if (ending := self._ending(text)) is not None:
                self._due.clear()
                self._password_due = False
                return ending
        elif (unasked := self._unasked(text)) is not None:
            return unasked
        if not self._due:
            return Notice(text)
        due = self._due[0]
        if due.shape is _Reply.GREETING:
            return self._first_line(text)
        # An error line stands for the whole reply, whatever its shape would have been.
        if due.shape is _Reply.BLOCK and not text.startswith(ERROR_PREFIX):
            self._in_block = True
            self._note_header(due.command, text)
            return ReplyLine(text, due.command)
        self._due.popleft()
        if due.shape is _Reply.GOODBYE and not text.startswith(ERROR_PREFIX):
            return Goodbye(text)
        if isinstance(due.command, Nick) and text.startswith(RENAMED_PREFIX):
            self._name = text.removeprefix(RENAMED_PREFIX).removesuffix(".")
        return ReplyLine(text, due.command)

    def _unasked(self, text: str) -> Event | None:
        """The event for a line the server sent on its own, or None if it is a reply."""
        if self._due and text == self._due[0].echo:
            return None
        if text.startswith(EVENT_PREFIX):
            event = parse_event(text)
            return Notice(text) if event is None else ChatLine(text, event)
        if text.startswith(WARNING_PREFIX):
            return Notice(text)
        if text.endswith(FAREWELL_SUFFIX):
            self._farewell = text
            return Farewell(text)
        return self._drain_notice(text)

    def _drain_notice(self, text: str) -> Draining | None:
        """The drain notice ``text`` is, noted; None if it is not one."""
        draining = parse_draining(text) if text.startswith(DRAINING_PREFIX) else None
        if draining is not None:
            self._draining = draining
        return draining

    def _note_header(self, command: Command | None, text: str) -> None:
        """Follow our name through a ``/resume`` reply's header."""
        if isinstance(command, Resume) and (match := _RESUMED.match(text)) is not None:
            self._name = match.group(1)

    def _block_line(self, text: str) -> Event:
        """A line inside a block: its end, or content with one stuffed dot removed."""
        due = self._due[0]
        if text == END_OF_BLOCK:
            self._in_block = False
            self._due.popleft()
            return EndOfBlock()
        content = text[1:] if text.startswith("..") else text
        if due.shape is _Reply.GREETING and content.startswith(RESUME_PREFIX):
            self._resume_token = content.removeprefix(RESUME_PREFIX)
        if isinstance(due.command, _REPLAYING) and (event := parse_event(content)) is not None:
            return ChatLine(content, event, replayed=True)
        return ReplyLine(content, due.command, header=False)

    def _first_line(self, text: str) -> Event:
        """The line in place of the greeting: the greeting itself, or a request for a password."""
        if text.startswith(GREETING_PREFIX) and text.endswith("."):
            self._in_block = True
            self._greeted = True
            self._name = text.removeprefix(GREETING_PREFIX).removesuffix(".")
            return Greeting(text, self._name)
        self._due.popleft()
        if text == AUTH_REQUIRED:
            self._password_asked = self._password_due = True
            return PasswordRequired(text)
        if self._password_asked and text.startswith(WRONG_PASSWORD_PREFIX):
            self._password_due = True
            return WrongPassword(text)
        return UnexpectedFirstLine(text)

    def _ending(self, text: str) -> Event | None:
        """The event for a line that ends the connection before the greeting, if it is one."""
        if (draining := self._drain_notice(text)) is not None:
            return draining
        if text == SERVER_FULL:
            return ServerFull(text)
        if text.startswith(REFUSED_PREFIX):
            return Refused(text)
        if text in (TOO_MANY_WRONG_PASSWORDS, AUTH_TIMEOUT):
            return AuthFailed(text)
        if text.endswith(FAREWELL_SUFFIX):
            return Farewell(text)
        return None
