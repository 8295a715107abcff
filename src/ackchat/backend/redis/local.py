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

Notices for the nodes (a heartbeat, a node lost, new live settings, a kick) pass
through the same order and go to :attr:`LocalIndex.on_notice`. When Redis lost the
cluster's data, its stream starts over from id 1: :meth:`LocalIndex.observe_run` sees
the new run and the index starts over with it. Each member keeps what the cluster must
be told to register it again (:class:`Registration`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from ackchat.backend.redis.codec import ALL, NOTICE, ROOM, Entry
from ackchat.protocol import replies

log = logging.getLogger("ackchat.server")

# Recent events kept for replay while operations are in flight (in practice a round
# trip's worth); past it the oldest are dropped, and a replay that needed them says so.
RING_LIMIT = 65536


class Registration(NamedTuple):
    """What the cluster must be told of a member connected here to register it again:
    its session record's fields, its resume token, and how to end its connection."""

    name: str
    token: str
    address: str
    connected_at: float
    earlier_names: tuple[str, ...]
    # Ends the connection with a farewell line (its name went to another session).
    evict: Callable[[bytes], None]
    # Disconnects it as kicked (an operator's), if its peer can (interface.Kickable).
    kick: Callable[[], bool] | None = None

    def renamed(self, name: str) -> Registration:
        """The same, after the member took ``name`` (its record keeps the one before)."""
        return self._replace(name=name, earlier_names=(*self.earlier_names, self.name))


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
    registration: Registration | None = None


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
        # The run of the cluster whose stream is read ("": not known yet), and whether
        # the index started over for a run not made yet (Redis had lost it).
        self.run = ""
        self._awaiting_run = False
        # Where notices for the nodes go (the backend's handler).
        self.on_notice: Callable[[Entry], None] = _ignore
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

    def observe_run(self, run: str | None) -> bool:
        """The cluster's run as Redis has it now (None: Redis has none, its data is
        lost). For another run than the one read so far, the index starts over: its
        stream begins again from id 1. True if it started over now (not when it had
        already, waiting for the run to be made)."""
        if run == self.run:
            return False
        if run is None:
            if self._awaiting_run:
                return False
            self._awaiting_run = True
        else:
            self.run = run
            if self._awaiting_run:
                self._awaiting_run = False
                return False
        self._start_over()
        return True

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

    def member_by_id(self, mid: str) -> LocalMember | None:
        """The local member with this member id, if any."""
        return self._by_mid.get(mid)

    def members(self) -> Iterator[LocalMember]:
        """Every member connected here."""
        return iter(list(self._by_mid.values()))

    def renumber(self, member: LocalMember, mid: str, session: str) -> None:
        """The cluster registered ``member`` again under new numbers (its own had gone to
        others while Redis had lost the cluster's data)."""
        if not self._attached(member):
            return
        del self._by_mid[member.mid]
        member.mid, member.session = mid, session
        self._by_mid[mid] = member

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
        self,
        mid: str,
        key: str,
        session: str,
        deliver: Callable[[bytes], None],
        position: int,
        registration: Registration | None = None,
    ) -> LocalMember:
        """A client admitted at ``position`` is connected here (held: release it)."""
        member = LocalMember(
            mid, key, session, deliver, position, holds=1, holding=[], registration=registration
        )
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
        registration: Registration | None = None,
    ) -> LocalMember | None:
        """``current``'s connection took over the held member ``mid`` at ``position``; the
        new member keeps ``current``'s holds and what they held (None if ``current`` left
        meanwhile)."""
        if not self._attached(current):
            return None
        holds, holding = current.holds, current.holding
        self.detach(current)
        member = LocalMember(
            mid, key, current.session, deliver, position, set(rooms), holds, holding, registration
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
        elif entry.kind == NOTICE:
            _notify(self.on_notice, entry)
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
        return entry.kind != NOTICE and entry.who == member.mid

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

    def _start_over(self) -> None:
        """Read a new stream from its start: every position of the old one is void. The
        answers waiting for them are given now, and then every member hears the new
        stream from its start, whatever position its change took effect at."""
        self.applied = 0
        self._ring.clear()
        self._ring_dropped = 0
        for ticket in self._tickets:
            ticket.floor = 0
        self._settle(len(self._waiting))
        for member in self._by_mid.values():
            member.since = 0
        for members in self._rooms.values():
            for member in members:
                members[member] = 0

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


def _ignore(_: Entry) -> None:
    """No one listens for notices."""


def _notify(handler: Callable[[Entry], None], entry: Entry) -> None:
    """Hand a notice over; a handler that fails is logged, not passed to the reader."""
    try:
        handler(entry)
    except Exception:
        log.exception("handling a notice of the cluster failed")


def _call(settle: Callable[[], None]) -> None:
    """Run a settle callback; one that fails is logged, not passed to the reader."""
    try:
        settle()
    except Exception:
        log.exception("settling a backend answer failed")
