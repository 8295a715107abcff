"""This node's side of cross-node delivery: who is connected here, and what reaches whom.

Every event of the cluster arrives once through the stream reader (fanout.py), in event
id order, and is handed to the local peers it is for: room members connected here
(but its sender), a direct message's recipient if it is here, everyone here for a
broadcast. The index is kept here, so delivery asks Redis nothing. Sans-I/O: the reader
feeds :meth:`LocalIndex.receive`, the backend reports what its scripts did.

An operation that changes who gets what (an admission, a join, a resume) takes effect
at its *position*, the last event id when its script ran: later events reach the
client, earlier ones do not, whichever of the script's reply and the reader gets here
first. The reply is settled once the reader has passed that position (so the sender's
own events are delivered here before it is answered, as in the memory backend); if the
reader got there first, the events it passed are replayed from a short ring of recent
events. Meanwhile the client's deliveries are held and then handed over in id order,
without duplicates, so that its messages stay in the order they were sent.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ackchat.backend.redis.codec import ALL, ROOM, Entry
from ackchat.protocol import replies

log = logging.getLogger("ackchat.server")

# Recent events kept for replay while operations are in flight (in practice a round
# trip's worth); past it the oldest are dropped, and a replay that needed them says so.
RING_LIMIT = 65536


@dataclass(eq=False, slots=True)
class LocalMember:
    """A chat identity connected to this node."""

    mid: str
    key: str
    # The admission number of its connection (its session record in Redis).
    session: str
    deliver: Callable[[bytes], None]
    # Events up to this id came before it was attached here; they do not reach it.
    since: int
    rooms: set[str] = field(default_factory=set)
    # Operations in flight that change what reaches it; while there are any, what it is
    # sent waits in ``holding`` as (event id, line).
    holds: int = 0
    holding: list[tuple[int, bytes]] | None = None


class Ticket:
    """An operation in flight that may need a replay: it keeps the ring from ``floor`` on."""

    __slots__ = ("active", "floor")

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.active = True


class LocalIndex:
    """The local peers by name, member id and room, and the events passing through."""

    def __init__(self, ring_limit: int = RING_LIMIT) -> None:
        # The id of the last event delivered (every id up to it was seen, or lost).
        self.applied = 0
        # Events this node never read because the stream was trimmed past it.
        self.missed = 0
        self._online = False
        self._by_key: dict[str, LocalMember] = {}
        self._by_mid: dict[str, LocalMember] = {}
        # Each room's local members, with the id after which its events reach them.
        self._rooms: dict[str, dict[LocalMember, int]] = {}
        # Answers waiting for the reader to pass their position: (position, order, settle).
        self._waiting: list[tuple[int, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._tickets: deque[Ticket] = deque()
        self._ring: deque[Entry] = deque()
        self._ring_limit = ring_limit
        # The newest event dropped from the ring by its limit.
        self._ring_dropped = 0

    # The reader's side

    def set_online(self, online: bool) -> None:
        """The reader is (not) reading; while it is not, answers do not wait for it."""
        self._online = online
        if not online:
            self._settle(len(self._waiting))

    def receive(self, entries: Iterable[Entry]) -> None:
        """Deliver events read from the stream, oldest first; repeats are skipped."""
        ring = self._ring if self._tickets else None
        for entry in entries:
            eid = entry.id
            if eid <= self.applied:
                continue
            if eid > self.applied + 1:
                self._lost(eid - self.applied - 1)
            self.applied = eid
            self._route(entry)
            if ring is not None:
                if len(ring) >= self._ring_limit:
                    self._ring_dropped = ring.popleft().id
                ring.append(entry)
        waiting = self._waiting
        while waiting and waiting[0][0] <= self.applied:
            self._settle(1)

    def settle_unreachable(self) -> int:
        """The reader found no event after its last one although answers wait for later
        positions: those events are not in Redis any more (it lost its data). Settle the
        answers rather than keep their clients waiting; returns how many there were."""
        count = len(self._waiting)
        self._settle(count)
        return count

    # The backend's side

    def member(self, key: str) -> LocalMember | None:
        """The local member that goes by the name with this key, if any."""
        return self._by_key.get(key)

    def when_reached(self, position: int, settle: Callable[[], None]) -> None:
        """Call ``settle`` once events up to ``position`` are delivered here (at once if
        they are, or if the reader is not reading)."""
        if position <= self.applied or not self._online:
            _call(settle)
        else:
            heapq.heappush(self._waiting, (position, next(self._order), settle))

    def begin(self) -> Ticket:
        """An operation that changes what reaches a client is being sent."""
        ticket = Ticket(self.applied)
        self._tickets.append(ticket)
        return ticket

    def end(self, ticket: Ticket) -> None:
        """That operation is over: the ring need not keep its events any more."""
        ticket.active = False
        tickets = self._tickets
        while tickets and not tickets[0].active:
            tickets.popleft()
        ring = self._ring
        if not tickets:
            ring.clear()
            return
        floor = tickets[0].floor
        while ring and ring[0].id <= floor:
            ring.popleft()

    def hold(self, member: LocalMember) -> None:
        """Keep what ``member`` is sent until :meth:`release`."""
        member.holds += 1
        if member.holding is None:
            member.holding = []

    def release(self, member: LocalMember) -> None:
        """Hand over what was held for ``member``, in id order, once each."""
        if member.holding is None:
            return
        member.holds -= 1
        if member.holds:
            return
        held, member.holding = dict(member.holding), None
        for eid in sorted(held):
            member.deliver(held[eid])

    def attach(
        self, mid: str, key: str, session: str, deliver: Callable[[bytes], None], position: int
    ) -> LocalMember:
        """A client admitted at ``position`` is connected here (held: release it)."""
        member = LocalMember(mid, key, session, deliver, position, holds=1, holding=[])
        self._by_key[key] = member
        self._by_mid[mid] = member
        self._replay(member, position, lambda entry: self._reaches(member, entry))
        return member

    def resume(
        self,
        current: LocalMember,
        mid: str,
        key: str,
        deliver: Callable[[bytes], None],
        rooms: list[str],
        position: int,
    ) -> LocalMember | None:
        """``current``'s connection took over the held member ``mid`` at ``position``; the
        new member keeps ``current``'s holds and what they held (None if ``current`` left
        meanwhile)."""
        if not self._attached(current):
            return None
        holds, holding = current.holds, current.holding
        self.detach(current)
        member = LocalMember(
            mid, key, current.session, deliver, position, set(rooms), holds, holding
        )
        self._by_key[key] = member
        self._by_mid[mid] = member
        for room in rooms:
            self._rooms.setdefault(room, {})[member] = position
        self._replay(member, position, lambda entry: self._reaches(member, entry))
        return member

    def join(self, member: LocalMember, room: str, position: int) -> None:
        """``member`` joined ``room`` at ``position`` (unless it left meanwhile)."""
        if not self._attached(member):
            return
        member.rooms.add(room)
        self._rooms.setdefault(room, {})[member] = position
        self._replay(
            member,
            position,
            lambda entry: entry.kind == ROOM and entry.room == room and entry.who != member.mid,
        )

    def leave(self, member: LocalMember, room: str) -> None:
        """``member`` is not in ``room`` any more."""
        member.rooms.discard(room)
        members = self._rooms.get(room)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._rooms[room]

    def rename(self, member: LocalMember, key: str) -> None:
        """``member`` goes by the name with this key now (unless it left meanwhile)."""
        if not self._attached(member):
            return
        if self._by_key.get(member.key) is member:
            del self._by_key[member.key]
        member.key = key
        self._by_key[key] = member

    def detach(self, member: LocalMember) -> None:
        """``member`` is not connected here any more: nothing reaches it."""
        if self._by_key.get(member.key) is member:
            del self._by_key[member.key]
        if self._by_mid.get(member.mid) is member:
            del self._by_mid[member.mid]
        for room in list(member.rooms):
            self.leave(member, room)
        member.holding = None
        member.holds = 0

    # Internals

    def _attached(self, member: LocalMember) -> bool:
        return self._by_mid.get(member.mid) is member

    def _route(self, entry: Entry) -> None:
        eid, who, data = entry.id, entry.who, entry.data
        if entry.kind == ROOM:
            members = self._rooms.get(entry.room)
            if members:
                for member, since in members.items():
                    if eid > since and member.mid != who:
                        _send(member, eid, data)
        elif entry.kind == ALL:
            for member in self._by_mid.values():
                if eid > member.since and member.mid != who:
                    _send(member, eid, data)
        else:
            target = self._by_mid.get(who)
            if target is not None and eid > target.since:
                _send(target, eid, data)

    def _reaches(self, member: LocalMember, entry: Entry) -> bool:
        """Whether ``entry`` is for ``member`` (its time aside)."""
        if entry.kind == ROOM:
            return entry.room in member.rooms and entry.who != member.mid
        if entry.kind == ALL:
            return entry.who != member.mid
        return entry.who == member.mid

    def _replay(self, member: LocalMember, position: int, wanted: Callable[[Entry], bool]) -> None:
        """Hold for ``member`` the events after ``position`` the reader passed before the
        change that makes them ``wanted`` was known here."""
        if position >= self.applied:
            return
        if position < self._ring_dropped:
            member.deliver(replies.missed_events(self._ring_dropped - position))
        holding = member.holding
        assert holding is not None, "a member is held while a change is replayed to it"
        for entry in self._ring:
            if entry.id > position and wanted(entry):
                holding.append((entry.id, entry.data))

    def _lost(self, count: int) -> None:
        """Events were trimmed from the stream before this node read them: say so."""
        self.missed += count
        log.warning(
            "%d cluster events were trimmed from the stream before this node read them;"
            " telling its %d clients",
            count,
            len(self._by_mid),
        )
        notice = replies.missed_events(count)
        for member in self._by_mid.values():
            member.deliver(notice)

    def _settle(self, count: int) -> None:
        for _ in range(count):
            _, _, settle = heapq.heappop(self._waiting)
            _call(settle)


def _send(member: LocalMember, eid: int, data: bytes) -> None:
    holding = member.holding
    if holding is None:
        member.deliver(data)
    else:
        holding.append((eid, data))


def _call(settle: Callable[[], None]) -> None:
    """Run a settle callback; one that fails is logged, not passed to the reader."""
    try:
        settle()
    except Exception:
        log.exception("settling a backend answer failed")
