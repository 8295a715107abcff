"""Parse one line from a client into a command.

A line is a command when, trimmed and in any case, it is one of the command words
(``status``, ``status all``, ``help``, ``exit``, ``who``), or when it starts with ``/``
(the chat commands: ``/msg``, ``/join``…, and the command words with a slash, where
``/quit`` is ``/exit``); every other line is a message to be acknowledged, kept exactly
as sent (a bare ``quit`` too, as in the original). Lines must be UTF-8. On a server
with a password, the first lines are read by :func:`parse_auth` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class InvalidUtf8Error(ValueError):
    """The line is not valid UTF-8; it is answered with an error and discarded."""


@dataclass(frozen=True, slots=True)
class Message:
    """An ordinary line, answered with its own text and `` ACK``."""

    text: str


@dataclass(frozen=True, slots=True)
class Status:
    """Ask for the cache of clients; ``show_all`` lifts the limit on departed entries."""

    show_all: bool = False


@dataclass(frozen=True, slots=True)
class Help:
    """Ask for the list of commands."""


@dataclass(frozen=True, slots=True)
class Exit:
    """End the session gracefully."""


@dataclass(frozen=True, slots=True)
class Direct:
    """``/msg <name> <text>``: a message to one client."""

    recipient: str
    text: str


@dataclass(frozen=True, slots=True)
class Broadcast:
    """``/all <text>``: a message to every client."""

    text: str


@dataclass(frozen=True, slots=True)
class Say:
    """``/say <room> <text>``: a message to a room one is in."""

    room: str
    text: str


@dataclass(frozen=True, slots=True)
class Join:
    """``/join <room>``: enter a room (created if needed) and see its recent messages."""

    room: str


@dataclass(frozen=True, slots=True)
class Leave:
    """``/leave <room>``."""

    room: str


@dataclass(frozen=True, slots=True)
class Rooms:
    """``/rooms``: every room with its member count."""


@dataclass(frozen=True, slots=True)
class Members:
    """``/members <room>``: who is in a room."""

    room: str


@dataclass(frozen=True, slots=True)
class Who:
    """``who`` or ``/who``: the connected clients, lighter than ``status``."""


@dataclass(frozen=True, slots=True)
class Nick:
    """``/nick <name>``: choose one's own name (the rest of the line, spaces and all)."""

    name: str


@dataclass(frozen=True, slots=True)
class History:
    """``/history <room>|direct [before <id>] [<count>]``: a page of older messages."""

    scope: str
    before: int | None
    count: int


@dataclass(frozen=True, slots=True)
class Resume:
    """``/resume <token>``: take back a session that lost its connection."""

    token: str


class CommandUsageError(ValueError):
    """A ``/`` command with missing or malformed arguments; the message shows the usage."""


Command = (
    Message
    | Status
    | Help
    | Exit
    | Direct
    | Broadcast
    | Say
    | Join
    | Leave
    | Rooms
    | Members
    | Who
    | Nick
    | History
    | Resume
)

HISTORY_DEFAULT = 20
HISTORY_MAX = 200

_KEYWORDS: dict[str, Command] = {
    "status": Status(),
    "status all": Status(show_all=True),
    "help": Help(),
    "exit": Exit(),
    "who": Who(),
}
# The first words of the keywords of two words.
_TWO_WORD_STARTS = tuple({keyword.split()[0] for keyword in _KEYWORDS if " " in keyword})
# Lines longer than this are messages without looking further: no command is that long,
# even with the surrounding and inner white space that is allowed around its words.
_MAX_COMMAND_LENGTH = 32


def parse_command(line: bytes) -> Command:
    """Return the command that ``line`` (without its line ending) stands for.

    Raises :class:`InvalidUtf8Error` if the line cannot be decoded.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidUtf8Error(f"invalid UTF-8 at byte {error.start}") from None
    if text.startswith("/"):
        return _parse_slash(text)
    keyword = _keyword(text)
    return Message(text) if keyword is None else keyword


def _keyword(text: str) -> Command | None:
    """The command word(s) that ``text`` is, in any case and spacing; else None."""
    if len(text) > _MAX_COMMAND_LENGTH:
        return None
    folded = text.strip().lower()
    keyword = _KEYWORDS.get(folded)
    if keyword is None and folded.startswith(_TWO_WORD_STARTS):
        # Two words with more or other white space between them: "status \t all".
        keyword = _KEYWORDS.get(" ".join(folded.split()))
    return keyword


# The command words with a slash; each takes no argument but ``/status all``.
_SLASH_KEYWORDS: dict[str, Command] = {
    "/status": Status(),
    "/help": Help(),
    "/exit": Exit(),
    "/quit": Exit(),
}

_USAGE = {
    "/status": "/status [all]",
    "/help": "/help",
    "/exit": "/exit",
    "/quit": "/quit",
    "/msg": "/msg <name> <text>",
    "/all": "/all <text>",
    "/say": "/say <room> <text>",
    "/join": "/join <room>",
    "/leave": "/leave <room>",
    "/rooms": "/rooms",
    "/members": "/members <room>",
    "/who": "/who",
    "/nick": "/nick <name>",
    "/history": "/history <room>|direct [before <id>] [<count>]",
    "/resume": "/resume <token>",
}


def _parse_slash(text: str) -> Command:
    """A ``/`` command: the word, then its arguments; a message's text is kept as sent."""
    word, _, rest = text.partition(" ")
    word = word.lower()
    if word not in _USAGE:
        raise CommandUsageError(f"unknown command {word}: type 'help' for the commands")
    arguments = rest.split()

    def usage() -> CommandUsageError:
        return CommandUsageError(f"usage: {_USAGE[word]}")

    if word in _SLASH_KEYWORDS:
        if word == "/status" and [argument.lower() for argument in arguments] == ["all"]:
            return Status(show_all=True)
        if arguments:
            raise usage()
        return _SLASH_KEYWORDS[word]
    if word in ("/msg", "/say"):
        target, _, message = rest.lstrip(" ").partition(" ")
        if not target or not message:
            raise usage()
        return Direct(target, message) if word == "/msg" else Say(target, message)
    if word == "/all":
        if not rest:
            raise usage()
        return Broadcast(rest)
    if word in ("/rooms", "/who"):
        if arguments:
            raise usage()
        return Rooms() if word == "/rooms" else Who()
    if word == "/history":
        return _parse_history(arguments, usage)
    if word == "/nick":
        # The whole rest is the name asked for: one with a space in it is then refused by
        # the name rules (chat/names.py), which say why, rather than by a usage line.
        if not arguments:
            raise usage()
        return Nick(rest.strip())
    if len(arguments) != 1:
        raise usage()
    argument = arguments[0]
    if word == "/join":
        return Join(argument)
    if word == "/leave":
        return Leave(argument)
    if word == "/members":
        return Members(argument)
    return Resume(argument)


def _parse_history(arguments: list[str], usage: Callable[[], CommandUsageError]) -> History:
    if not arguments:
        raise usage()
    scope, rest = arguments[0], arguments[1:]
    before = None
    if len(rest) >= 2 and rest[0].lower() == "before":
        if not rest[1].isdigit():
            raise usage()
        before, rest = int(rest[1]), rest[2:]
    count = HISTORY_DEFAULT
    if rest:
        if len(rest) > 1 or not rest[0].isdigit():
            raise usage()
        count = min(int(rest[0]), HISTORY_MAX)
    return History(scope, before, count)


# A line whose first byte is none of these cannot be a command: command words start with
# these letters, possibly after white space (ASCII, or Unicode, whose UTF-8 starts at 0x80),
# and chat commands with a slash.
_MAYBE_COMMAND_START = frozenset(b"sShHeEwW/ \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f") | frozenset(
    range(0x80, 0x100)
)


def is_plain_message(line: bytes) -> bool:
    """Whether :func:`parse_command` would return a :class:`Message` for ``line``.

    The same answer, found faster for the common case: the server's hot path uses it
    to answer a batch of ordinary lines without building a command for each.
    """
    if line and line[0] not in _MAYBE_COMMAND_START and line.isascii():
        return True
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not text.startswith("/") and _keyword(text) is None


def expects_multiline_reply(command: Command) -> bool:
    """Whether the server answers ``command`` with a multi-line block ending in ``.``."""
    return isinstance(command, Status | Help | Join | Rooms | Members | Who | History | Resume)


_EXIT_LINES = frozenset({b"exit", b"/exit", b"/quit"})


def is_exit(line: bytes) -> bool:
    """Whether ``line`` asks to leave (``exit``, ``/exit`` or ``/quit``), in any case.

    Read before authentication, where every other line but ``auth`` is refused.
    """
    return line.strip().lower() in _EXIT_LINES


def parse_auth(line: bytes) -> bytes | None:
    """The password in an ``auth <password>`` line, or None if the line is something else.

    The word ``auth`` may be in any case; white space around the password is ignored.
    """
    first, _, rest = line.strip().partition(b" ")
    if first.lower() != b"auth":
        return None
    return rest.strip()
