"""The chat hub: who is in which room, who gets which message, what is kept for later.

The hub is sans-I/O. Connections attach as :class:`Peer` objects and the hub hands them
encoded lines through ``deliver``; every message is encoded once, however many
recipients it has. Time is passed in: ``now`` is wall-clock time, shown in event lines;
``mono`` is a monotonic clock's, for the resume deadlines, which a step of the wall
clock must neither stretch nor cut. Errors are :class:`ChatError` exceptions whose
message is the error line to send back.

A client that vanishes without ``exit`` is *held* for a grace period: its name stays
reserved, its rooms are kept, and what it is sent is buffered (up to a bound) until it
comes back with its resume token or the grace period ends.
"""

from __future__ import annotations

import secrets
from base64 import urlsafe_b64encode
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ackchat.chat.names import InvalidNameError, check_name, name_key, room_name
from ackchat.errors import AckchatError
from ackchat.protocol.replies import chat_event

# A resume token's random bytes: a multiple of 3, so that each token is whole base64
# characters of its own in a batch encoded together.
TOKEN_BYTES = 18
TOKEN_LENGTH = TOKEN_BYTES * 4 // 3
TOKEN_BATCH = 256


class ChatError(AckchatError):
    """A chat command that cannot be done; the message is sent back after ``ERROR``."""


# The refusals every backend words alike (the backend contract suite checks the words).

UNKNOWN_TOKEN = "unknown or expired resume token"
RESUME_WITH_ROOMS = "resume before joining rooms: this session has rooms already"


def no_such_client(name: str) -> ChatError:
    """Nobody goes by ``name`` (connected or held)."""
    return ChatError(f"no such client: {name}")


def name_taken(name: str) -> ChatError:
    """Somebody else holds ``name``, in some case."""
    return ChatError(f"name taken: {name}")


def join_first(room: str) -> ChatError:
    """Sending to, or reading the history of, a room one is not in."""
    return ChatError(f"you are not in {room}: send '/join {room}' first")


def already_in(room: str) -> ChatError:
    """Joining a room one is in."""
    return ChatError(f"you are in {room} already")


def not_in(room: str) -> ChatError:
    """Leaving a room one is not in."""
    return ChatError(f"you are not in {room}")


def no_such_room(room: str) -> ChatError:
    """Asking for the members of a room nobody is in."""
    return ChatError(f"no such room: {room}")


class TokenSource:
    """Resume tokens: 144 random bits from the system's CSPRNG each, in URL-safe base64.

    One system call and one encoding serve a batch of tokens (per token they cost more
    than the rest of attaching a client).
    """

    __slots__ = ("_spare",)

    def __init__(self) -> None:
        self._spare: list[str] = []

    def new(self) -> str:
        """A token never handed out before (as far as 144 random bits go)."""
        if not self._spare:
            text = urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES * TOKEN_BATCH)).decode()
            self._spare = [
                text[start : start + TOKEN_LENGTH] for start in range(0, len(text), TOKEN_LENGTH)
            ]
        return self._spare.pop()


class Peer(Protocol):
    """A connection, as the hub sees it."""

    def deliver(self, data: bytes) -> None:
        """Queue ``data`` (whole lines) for the client, in order."""


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """A message or presence change, with its server-wide id and time."""

    id: int
    time: float
    scope: str
    sender: str
    text: str


@dataclass(eq=False, slots=True)
class Member:
    """One chat identity: connected (with a peer) or held for resume (without).

    The message queues are made when first needed: most clients never use them, and
    an empty deque costs more memory than the rest of a connection.
    """

    name: str
    token: str
    peer: Peer | None
    rooms: set[str] = field(default_factory=set)
    direct: deque[ChatEvent] | None = None
    missed: deque[bytes] | None = None
    missed_dropped: int = 0
    # The monotonic time after which a held member is forgotten.
    held_until: float = 0.0


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of ``/history``: the scope as shown (``#dev``, ``direct``), oldest first."""

    scope: str
    events: list[ChatEvent]
    # Whether messages older than the page's first one are kept, for the "older" hint.
    more: bool


def history_page(
    scope: str, kept: Iterable[ChatEvent], before: int | None, count: int
) -> HistoryPage:
    """Up to ``count`` of the ``kept`` events (oldest first) whose id is below ``before``."""
    older = [event for event in kept if before is None or event.id < before]
    page = older[-count:] if count else []
    return HistoryPage(scope, page, more=len(older) > len(page) and bool(page))


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a resumed client gets back: its name, its rooms and what it missed."""

    name: str
    rooms: list[str]
    missed: list[bytes]
    dropped: int


class ChatHub:
    """Rooms, direct messages, broadcasts, names, history and resume, for one server."""

    def __init__(
        self,
        room_history: int = 50,
        direct_history: int = 50,
        resume_grace: float = 60.0,
        resume_buffer: int = 200,
    ) -> None:
        self._room_history = room_history
        self._direct_history = direct_history
        self._resume_grace = resume_grace
        self._resume_buffer = resume_buffer
        self._members: dict[str, Member] = {}
        self._by_token: dict[str, Member] = {}
        self._rooms: dict[str, set[Member]] = {}
        # Each room's members ready for fan-out, with their peers' deliver methods (None
        # for a held member): made on the first message, dropped when membership or a
        # member's connection changes.
        self._receivers: dict[str, tuple[tuple[Member, Callable[[bytes], None] | None], ...]] = {}
        self._room_events: dict[str, deque[ChatEvent]] = {}
        self._last_id = 0
        self._tokens = TokenSource()

    def set_history_sizes(self, room_history: int, direct_history: int) -> None:
        """Keep this many messages per room and direct messages per client from now on;
        kept histories longer than that lose their oldest at once."""
        if room_history < 0 or direct_history < 0:
            raise ValueError("history sizes must not be negative")
        self._room_history = room_history
        self._direct_history = direct_history
        for room, events in self._room_events.items():
            self._room_events[room] = deque(events, maxlen=room_history)
        for member in self._members.values():
            if member.direct is not None:
                member.direct = deque(member.direct, maxlen=direct_history)

    # Identities

    def attach(self, name: str, peer: Peer) -> str:
        """Register a newly named client; returns its resume token."""
        member = Member(name, self._tokens.new(), peer)
        self._members[name_key(name)] = member
        self._by_token[member.token] = member
        return member.token

    def rename(self, old: str, new: str, now: float) -> str:
        """Give a client the name it chose; returns the name. Rooms hear of it."""
        try:
            check_name(new)
        except InvalidNameError as error:
            raise ChatError(str(error)) from None
        member = self._member(old)
        holder = self._members.get(name_key(new))
        if holder is not None and holder is not member:
            raise name_taken(new)
        del self._members[name_key(old)]
        member.name = new
        self._members[name_key(new)] = member
        for room in sorted(member.rooms):
            self._announce(room, member, f"{old} is now {new}", now)
        return new

    def detach(self, name: str, now: float, hold: bool, *, mono: float) -> None:
        """A client left: forget it (``exit``) or hold it for resume (it vanished)."""
        member = self._members.get(name_key(name))
        if member is None:
            return
        member.peer = None
        self._connection_changed(member)
        if hold and self._resume_grace > 0:
            member.held_until = mono + self._resume_grace
            for room in sorted(member.rooms):
                self._announce(room, member, f"{member.name} lost the connection", now)
            return
        self._forget(member, now, "left")

    def resume(self, token: str, current: str, peer: Peer, now: float, *, mono: float) -> Resumed:
        """Swap the connection named ``current`` into the held identity of ``token``."""
        member = self._by_token.get(token)
        if member is None or member.peer is not None or member.held_until < mono:
            raise ChatError(UNKNOWN_TOKEN)
        fresh = self._member(current)
        if fresh.rooms:
            raise ChatError(RESUME_WITH_ROOMS)
        del self._members[name_key(current)]
        del self._by_token[fresh.token]
        member.peer = peer
        self._connection_changed(member)
        missed, dropped = list(member.missed or ()), member.missed_dropped
        member.missed, member.missed_dropped = None, 0
        for room in sorted(member.rooms):
            self._announce(room, member, f"{member.name} is back", now)
        return Resumed(member.name, sorted(member.rooms), missed, dropped)

    def expire(self, now: float, *, mono: float) -> list[str]:
        """Forget held clients whose grace period is over; returns their names."""
        expired = [
            member
            for member in self._members.values()
            if member.peer is None and member.held_until < mono
        ]
        for member in expired:
            self._forget(member, now, "did not come back")
        return [member.name for member in expired]

    def token_of(self, name: str) -> str:
        """The resume token of a connected client."""
        return self._member(name).token

    # Messages

    def direct(self, sender: str, recipient: str, text: str, now: float) -> None:
        """Send ``text`` to one client by name (held clients get it when they resume)."""
        source = self._member(sender)
        target = self._members.get(name_key(recipient))
        if target is None:
            raise no_such_client(recipient)
        event = self._event("direct", f"{source.name}>{target.name}", text, now)
        self._keep_direct(source, event)
        if target is not source:
            self._keep_direct(target, event)
        self._send(target, chat_event(event))

    def broadcast(self, sender: str, text: str, now: float) -> int:
        """Send ``text`` to every other client, held ones included; returns how many."""
        source = self._member(sender)
        data = chat_event(self._event("all", source.name, text, now))
        receivers = [member for member in self._members.values() if member is not source]
        for member in receivers:
            self._send(member, data)
        return len(receivers)

    def say(self, sender: str, room: str, text: str, now: float) -> None:
        """Send ``text`` to every member of a room the sender is in."""
        source = self._member(sender)
        room = self._room_of(room)
        if source not in self._rooms.get(room, ()):
            raise join_first(room)
        self._to_room(room, self._event(room, source.name, text, now), skip=source)

    # Rooms

    def join(self, name: str, room: str, now: float) -> tuple[str, int, list[ChatEvent]]:
        """Enter a room; returns its name, its member count and its recent messages."""
        member = self._member(name)
        room = self._room_of(room)
        if room in member.rooms:
            raise already_in(room)
        members = self._rooms.setdefault(room, set())
        history = self._room_events.setdefault(room, deque(maxlen=self._room_history))
        recent = list(history)
        members.add(member)
        member.rooms.add(room)
        self._receivers.pop(room, None)
        self._announce(room, member, f"{member.name} joined", now)
        return room, len(members), recent

    def leave(self, name: str, room: str, now: float) -> str:
        """Leave a room one is in; returns the room's name."""
        member = self._member(name)
        room = self._room_of(room)
        if room not in member.rooms:
            raise not_in(room)
        self._leave(member, room, f"{member.name} left", now)
        return room

    def rooms(self) -> list[tuple[str, int]]:
        """Every room with its member count, by name."""
        return sorted((room, len(members)) for room, members in self._rooms.items())

    def members(self, room: str) -> tuple[str, list[str]]:
        """The room's name and the names in it, sorted; held clients are marked away."""
        room = self._room_of(room)
        if room not in self._rooms:
            raise no_such_room(room)
        names = sorted(
            member.name if member.peer is not None else f"{member.name} (away)"
            for member in self._rooms[room]
        )
        return room, names

    def who(self) -> list[tuple[str, list[str]]]:
        """Every connected client with its rooms, by name."""
        return sorted(
            (member.name, sorted(member.rooms))
            for member in self._members.values()
            if member.peer is not None
        )

    def history(self, name: str, scope: str, before: int | None, count: int) -> HistoryPage:
        """Up to ``count`` messages of a room (or one's direct messages) older than ``before``."""
        member = self._member(name)
        if scope.lower() == "direct":
            scope = "direct"
            events: Iterable[ChatEvent] = member.direct or ()
        else:
            scope = self._room_of(scope)
            if scope not in member.rooms:
                raise join_first(scope)
            events = self._room_events.get(scope, ())
        return history_page(scope, events, before, count)

    def in_rooms(self, name: str) -> list[str]:
        """The rooms a client is in."""
        return sorted(self._member(name).rooms)

    # Internals

    def _member(self, name: str) -> Member:
        member = self._members.get(name_key(name))
        if member is None:
            raise no_such_client(name)
        return member

    def _room_of(self, text: str) -> str:
        try:
            return room_name(text)
        except InvalidNameError as error:
            raise ChatError(str(error)) from None

    def _event(self, scope: str, sender: str, text: str, now: float) -> ChatEvent:
        self._last_id += 1
        return ChatEvent(self._last_id, now, scope, sender, text)

    def _to_room(self, room: str, event: ChatEvent, skip: Member, keep: bool = True) -> None:
        """Deliver to the room's members but ``skip`` (the sender, who gets an ACK).

        Messages are kept in the room's history; presence changes are not.
        """
        if keep:
            self._room_events[room].append(event)
        data = chat_event(event)
        receivers = self._receivers.get(room)
        if receivers is None:
            receivers = self._receivers[room] = tuple(
                (member, member.peer.deliver if member.peer is not None else None)
                for member in self._rooms[room]
            )
        for member, deliver in receivers:
            if member is not skip:
                if deliver is not None:
                    deliver(data)
                else:
                    self._keep_missed(member, data)

    def _announce(self, room: str, subject: Member, text: str, now: float) -> None:
        """Tell a room's other members what ``subject`` did."""
        self._to_room(room, self._event(room, "*", text, now), skip=subject, keep=False)

    def _send(self, member: Member, data: bytes) -> None:
        if member.peer is not None:
            member.peer.deliver(data)
        else:
            self._keep_missed(member, data)

    def _keep_missed(self, member: Member, data: bytes) -> None:
        """Keep ``data`` for a held member, to hand over when it resumes (bounded)."""
        if member.missed is None:
            member.missed = deque(maxlen=self._resume_buffer)
        if len(member.missed) == member.missed.maxlen:
            member.missed_dropped += 1
        member.missed.append(data)

    def _keep_direct(self, member: Member, event: ChatEvent) -> None:
        if member.direct is None:
            member.direct = deque(maxlen=self._direct_history)
        member.direct.append(event)

    def _connection_changed(self, member: Member) -> None:
        """``member`` lost or regained its connection: its rooms' receivers change."""
        for room in member.rooms:
            self._receivers.pop(room, None)

    def _leave(self, member: Member, room: str, text: str, now: float) -> None:
        member.rooms.discard(room)
        members = self._rooms[room]
        members.discard(member)
        self._receivers.pop(room, None)
        if members:
            self._announce(room, member, text, now)
        else:
            del self._rooms[room]
            del self._room_events[room]

    def _forget(self, member: Member, now: float, how: str) -> None:
        del self._members[name_key(member.name)]
        del self._by_token[member.token]
        if member.rooms:
            for room in sorted(member.rooms):
                self._leave(member, room, f"{member.name} {how}", now)
