"""Parse one line from a client into a command.

A line is a command when, trimmed and in any case, it is one of the command words
(``status``, ``status all``, ``help``, ``exit``); every other line is a message to be
acknowledged, kept exactly as sent. Lines must be UTF-8. On a server with a password,
the first lines are read by :func:`parse_auth` instead.
"""

from __future__ import annotations

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


Command = Message | Status | Help | Exit

_KEYWORDS: dict[str, Command] = {
    "status": Status(),
    "status all": Status(show_all=True),
    "help": Help(),
    "exit": Exit(),
}
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
    if len(text) <= _MAX_COMMAND_LENGTH:
        keyword = _KEYWORDS.get(" ".join(text.split()).lower())
        if keyword is not None:
            return keyword
    return Message(text)


def expects_multiline_reply(command: Command) -> bool:
    """Whether the server answers ``command`` with a multi-line block ending in ``.``."""
    return isinstance(command, Status | Help)


def parse_auth(line: bytes) -> bytes | None:
    """The password in an ``auth <password>`` line, or None if the line is something else.

    The word ``auth`` may be in any case; white space around the password is ignored.
    """
    first, _, rest = line.strip().partition(b" ")
    if first.lower() != b"auth":
        return None
    return rest.strip()
