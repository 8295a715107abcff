"""The names and rooms a client has heard of, for tab completion: pure, fed tracker events.

Names come from ``who`` and ``/members`` replies and from event senders and presence
lines; rooms from ``/rooms``, ``/join``, ``/history`` and ``/resume`` replies and from
events. A ``who`` or ``/rooms`` reply is the whole truth at its time, so it replaces what
was known.
"""

from __future__ import annotations

import re

from ackchat.client.core import ChatEvent, ChatLine, Event, ReplyLine
from ackchat.protocol.commands import History, Join, Members, Resume, Rooms, Who

COMMAND_WORDS = (
    "/all",
    "/exit",
    "/help",
    "/history",
    "/join",
    "/leave",
    "/members",
    "/msg",
    "/nick",
    "/quit",
    "/resume",
    "/rooms",
    "/say",
    "/status",
    "/who",
    "exit",
    "help",
    "status",
    "who",
)
# The commands whose first argument is a client's name, or a room.
NAME_COMMANDS = frozenset({"/msg"})
ROOM_COMMANDS = frozenset({"/join", "/say", "/leave", "/members", "/history"})
DIRECT_SCOPE = "direct"

_RENAMED = re.compile(r"(\S+) is now (\S+)")
_GONE = re.compile(r"(\S+) did not come back")
_ROOM = re.compile(r"#[^\s,;:]+")


class ChatDirectory:
    """Known client names and rooms, and the completions they offer for a typed line."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._rooms: set[str] = set()

    @property
    def names(self) -> list[str]:
        """The known names, sorted without regard to case."""
        return sorted(self._names.values(), key=str.casefold)

    @property
    def rooms(self) -> list[str]:
        """The known rooms, sorted."""
        return sorted(self._rooms)

    def observe(self, event: Event) -> None:
        """Learn from one event of the tracker."""
        if isinstance(event, ChatLine):
            self._learn_event(event.event)
        elif isinstance(event, ReplyLine):
            self._learn_reply(event)

    def complete(self, typed: str, own_name: str = "") -> list[str]:
        """The words that may complete the last word of ``typed`` (our own name left out)."""
        words = typed.split(" ")
        if len(words) == 1:
            return _matching(COMMAND_WORDS, words[0])
        if len(words) != 2:
            return []
        command, partial = words[0].lower(), words[1]
        if command in NAME_COMMANDS:
            own = own_name.casefold()
            return _matching([name for name in self.names if name.casefold() != own], partial)
        if command in ROOM_COMMANDS:
            extra = [DIRECT_SCOPE] if command == "/history" else []
            rooms = _matching(self.rooms, partial if partial.startswith("#") else "#" + partial)
            return [*rooms, *_matching(extra, partial)]
        return []

    def _add_name(self, name: str) -> None:
        self._names[name.casefold()] = name

    def _drop_name(self, name: str) -> None:
        self._names.pop(name.casefold(), None)

    def _learn_event(self, event: ChatEvent) -> None:
        if event.scope.startswith("#"):
            self._rooms.add(event.scope)
        if not event.is_presence:
            for name in event.sender.split(">"):
                self._add_name(name)
        elif (renamed := _RENAMED.fullmatch(event.text)) is not None:
            self._drop_name(renamed.group(1))
            self._add_name(renamed.group(2))
        elif (gone := _GONE.fullmatch(event.text)) is not None:
            self._drop_name(gone.group(1))
        elif event.text:
            self._add_name(event.text.split(" ", 1)[0])

    def _learn_reply(self, line: ReplyLine) -> None:
        command, first_word = line.answers, line.text.split(" ", 1)[0]
        if isinstance(command, Who):
            if line.header:
                self._names.clear()
            elif first_word:
                self._add_name(first_word)
        elif isinstance(command, Rooms):
            if line.header:
                self._rooms.clear()
            elif first_word.startswith("#"):
                self._rooms.add(first_word)
        elif isinstance(command, Members) and not line.header and first_word:
            self._add_name(first_word)
        elif isinstance(command, Join | History | Resume) and line.header:
            self._rooms.update(_ROOM.findall(line.text))


def _matching(candidates: list[str] | tuple[str, ...], partial: str) -> list[str]:
    """The candidates that start with ``partial``, without regard to case."""
    start = partial.casefold()
    return [candidate for candidate in candidates if candidate.casefold().startswith(start)]
