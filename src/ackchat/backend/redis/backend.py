"""The Redis backend: the state of a cluster of ackchat servers, shared through Redis.

Every node of a cluster holds a :class:`RedisBackend` on the same Redis and cluster
name. Admission, names, departures, rooms, history and held sessions live in Redis and
change only through the Lua scripts (scripts.py), so they are atomic and cluster-wide;
events reach the other nodes through the cluster's stream (fanout.py) and this node's
clients through its local index (local.py). Each operation answers with a
:class:`~ackchat.backend.pending.Pending`; operations asked for in one loop turn share
one round trip (commands.py). A connection costs two: its admission and its departure.

What is checked here, before asking Redis, is what this node knows for sure: the rules
of a name or a room, and that the client asking is connected here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ackchat.backend.interface import Admitted, BackendUnavailableError, Clock
from ackchat.backend.pending import Pending
from ackchat.backend.redis import scripts
from ackchat.backend.redis.codec import decode_event, decode_record, text_of, time_text
from ackchat.backend.redis.commands import CommandConnection
from ackchat.backend.redis.fanout import StreamReader
from ackchat.backend.redis.keys import ClusterKeys
from ackchat.backend.redis.local import LocalIndex, LocalMember, Ticket
from ackchat.chat.hub import (
    RESUME_WITH_ROOMS,
    UNKNOWN_TOKEN,
    ChatError,
    ChatEvent,
    HistoryPage,
    Peer,
    Resumed,
    TokenSource,
    already_in,
    history_page,
    join_first,
    name_taken,
    no_such_client,
    no_such_room,
    not_in,
)
from ackchat.chat.names import InvalidNameError, check_name, name_key, room_name
from ackchat.protocol.replies import format_time, sanitize
from ackchat.records import DisconnectReason, SessionRecord, StatusSnapshot
from ackchat.registry import client_name

T = TypeVar("T")

# Events the cluster's stream keeps (about: Redis trims whole blocks of them). A node
# that falls further behind is told how many it lost.
STREAM_LIMIT = 100_000

Refusals = Mapping[bytes, Callable[[], ChatError]]
_NONE: Refusals = {}


class RedisBackend:
    """Every operation of :class:`~ackchat.backend.interface.Backend`, for one node of a
    cluster; each answers later, once Redis has."""

    def __init__(
        self,
        url: str,
        *,
        cluster_name: str = "ackchat",
        node_id: str,
        clock: Clock,
        max_clients: int,
        history_limit: int,
        room_history: int = 50,
        direct_history: int = 50,
        resume_grace: float = 60.0,
        resume_buffer: int = 200,
        node_max_clients: int = 0,
        stream_limit: int = STREAM_LIMIT,
    ) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be a positive integer")
        if history_limit < 0:
            raise ValueError("history_limit must not be negative")
        self.node_id = node_id
        self._keys = keys = ClusterKeys(cluster_name)
        self._clock = clock
        self._max_clients = max_clients
        self._history_limit = history_limit
        self._room_history = room_history
        self._direct_history = direct_history
        self._resume_grace = resume_grace
        self._node_max_clients = node_max_clients
        # The arguments every script starts with (see scripts.py) but the time, encoded
        # once.
        common = (keys.event_seq, keys.prefix, stream_limit, resume_buffer)
        self._common = tuple(str(value).encode() for value in common)
        self._index = LocalIndex()
        self._tokens = TokenSource()
        client = f"ackchat:{cluster_name}:{node_id}"
        self._commands = CommandConnection(url, f"{client}:commands", scripts.ALL_SCRIPTS)
        self._reader = StreamReader(url, f"{client}:reader", keys.events, self._index)

    @property
    def round_trips(self) -> int:
        """Round trips to Redis for operations so far (pipelines sent)."""
        return self._commands.round_trips

    @property
    def missed_events(self) -> int:
        """Events this node never read because the stream was trimmed past it."""
        return self._index.missed

    async def start(self) -> None:
        """Connect, load the scripts, set the cluster's client limit if it has none, start
        reading the stream; raises BackendUnavailableError if Redis cannot be reached."""
        limit = self._keys.max_clients
        _, cluster_max, position = await self._commands.connect(
            ("SET", limit, self._max_clients, "NX"), ("GET", limit), ("GET", self._keys.event_seq)
        )
        self._max_clients = int(cluster_max)
        self._index.applied = int(position or 0)
        try:
            await self._reader.connect()
        except BackendUnavailableError:
            await self._commands.close()
            raise

    async def close(self) -> None:
        """Stop reading and sending; answers still waiting are given or failed."""
        await self._reader.close()
        await self._commands.close()

    @property
    def max_clients(self) -> int:
        """The cluster's limit as last seen (each admission and ``status`` refresh it)."""
        return self._max_clients

    def set_max_clients(self, value: int) -> Pending[None]:
        if value < 1:
            raise ValueError("max_clients must be a positive integer")
        self._max_clients = value
        pending: Pending[None] = Pending()
        self._commands.submit(
            ("SET", self._keys.max_clients, value),
            lambda _: pending.set_result(None),
            pending.set_exception,
        )
        return pending

    def set_history_sizes(
        self, history_limit: int, room_history: int, direct_history: int
    ) -> Pending[None]:
        if min(history_limit, room_history, direct_history) < 0:
            raise ValueError("history sizes must not be negative")
        self._history_limit = history_limit
        self._room_history = room_history
        self._direct_history = direct_history
        sizes = (history_limit, room_history, direct_history)
        return self._read(scripts.resize, sizes, _NONE, _nothing)

    # Sessions

    def admit(self, address: str, peer: Peer) -> Pending[Admitted | None]:
        now = self._clock.wall()
        token = self._tokens.new()
        index = self._index
        ticket = index.begin()
        pending: Pending[Admitted | None] = Pending()

        def on_reply(reply: list[Any]) -> None:
            status, position, *rest = reply
            if status != b"ok":
                self._max_clients = int(rest[0])
                index.end(ticket)
                pending.set_result(None)
                return
            number, self._max_clients = int(rest[0]), int(rest[1])
            record = SessionRecord(number, client_name(number), address, now, node=self.node_id)

            def settle() -> None:
                mid = str(number)
                member = index.attach(mid, name_key(record.name), mid, peer.deliver, position)
                try:
                    pending.set_result(Admitted(record, token))
                finally:
                    index.end(ticket)
                    index.release(member)

            index.when_reached(position, settle)

        def on_error(error: BaseException) -> None:
            index.end(ticket)
            pending.set_exception(error)

        arguments = (address, time_text(now), self.node_id, self._node_max_clients, token)
        self._script(scripts.admit, "", (*arguments, self._max_clients), on_reply, on_error)
        return pending

    def depart(self, name: str, reason: DisconnectReason, hold: bool) -> Pending[None]:
        member = self._index.member(name_key(name))
        if member is None:
            # Not connected here: there is nothing of this node's to record.
            gone: Pending[None] = Pending()
            gone.set_result(None)
            return gone
        # Nothing reaches a connection that is gone, from now on.
        self._index.detach(member)
        now = self._clock.wall()
        arguments = (
            member.session,
            time_text(now),
            str(reason),
            int(hold),
            repr(self._resume_grace),
            self._history_limit,
        )
        return self._change(scripts.depart, now, arguments, _NONE, _nothing)

    def rename(self, name: str, new_name: str) -> Pending[str]:
        try:
            check_name(new_name)
        except InvalidNameError as error:
            raise ChatError(str(error)) from None
        member = self._member(name)
        new_key = name_key(new_name)

        def renamed(_: int, __: list[Any]) -> None:
            self._index.rename(member, new_key)

        return self._change(
            scripts.rename,
            self._clock.wall(),
            (name, member.key, new_name, new_key),
            {b"no-sender": lambda: no_such_client(name), b"taken": lambda: name_taken(new_name)},
            lambda _: new_name,
            renamed,
        )

    def snapshot(self, recent_limit: int | None) -> Pending[StatusSnapshot]:
        limit = -1 if recent_limit is None else recent_limit

        def snapshot(rest: list[Any]) -> StatusSnapshot:
            max_clients, seen, rejected, dropped, departed, connected = map(int, rest[:6])
            self._max_clients = max_clients
            records = [decode_record(raw) for raw in rest[6:]]
            records.sort(key=_by_number)
            return StatusSnapshot(
                sessions=records,
                connected=connected,
                max_clients=max_clients,
                seen=seen,
                rejected=rejected,
                dropped=dropped,
                hidden=departed - (len(records) - connected),
            )

        return self._read(scripts.snapshot, (limit,), _NONE, snapshot)

    # Messages

    def direct(self, sender: str, recipient: str, text: str) -> Pending[None]:
        member = self._member(sender)
        now = self._clock.wall()
        arguments = (member.key, name_key(recipient), text, sanitize(text), time_text(now))
        return self._change(
            scripts.direct,
            now,
            (*arguments, self._direct_history),
            {
                b"no-sender": lambda: no_such_client(sender),
                b"no-target": lambda: no_such_client(recipient),
            },
            _nothing,
        )

    def broadcast(self, sender: str, text: str) -> Pending[int]:
        member = self._member(sender)
        return self._change(
            scripts.broadcast,
            self._clock.wall(),
            (member.key, sanitize(text)),
            {b"no-sender": lambda: no_such_client(sender)},
            lambda rest: int(rest[0]),
        )

    def say(self, sender: str, room: str, text: str) -> Pending[None]:
        member = self._member(sender)
        room = _room(room)
        now = self._clock.wall()
        arguments = (member.key, room, text, sanitize(text), time_text(now))
        return self._change(
            scripts.say,
            now,
            (*arguments, self._room_history),
            {b"no-sender": lambda: no_such_client(sender), b"join-first": lambda: join_first(room)},
            _nothing,
        )

    # Rooms

    def join(self, name: str, room: str) -> Pending[tuple[str, int, list[ChatEvent]]]:
        member = self._member(name)
        room = _room(room)
        index = self._index

        def joined(position: int, _: list[Any]) -> LocalMember:
            index.join(member, room, position)
            return member

        return self._change(
            scripts.join,
            self._clock.wall(),
            (member.key, room),
            {b"no-sender": lambda: no_such_client(name), b"already": lambda: already_in(room)},
            lambda rest: (room, int(rest[0]), [decode_event(raw) for raw in rest[1:]]),
            joined,
            held=member,
        )

    def leave(self, name: str, room: str) -> Pending[str]:
        member = self._member(name)
        room = _room(room)
        # It hears nothing more of the room it asked to leave.
        self._index.leave(member, room)
        return self._change(
            scripts.leave,
            self._clock.wall(),
            (member.key, room),
            {b"no-sender": lambda: no_such_client(name), b"not-in": lambda: not_in(room)},
            lambda _: room,
        )

    def rooms(self) -> Pending[list[tuple[str, int]]]:
        pending: Pending[list[tuple[str, int]]] = Pending()

        def on_reply(reply: list[bytes]) -> None:
            pairs = zip(reply[::2], reply[1::2], strict=True)
            pending.set_result(sorted((text_of(room), int(count)) for room, count in pairs))

        self._commands.submit(("HGETALL", self._keys.rooms), on_reply, pending.set_exception)
        return pending

    def members(self, room: str) -> Pending[tuple[str, list[str]]]:
        room = _room(room)

        def names(rest: list[Any]) -> tuple[str, list[str]]:
            pairs = zip(rest[::2], rest[1::2], strict=True)
            return room, sorted(
                f"{text_of(name)} (away)" if held else text_of(name) for name, held in pairs
            )

        return self._read(scripts.members, (room,), {b"no-room": lambda: no_such_room(room)}, names)

    def who(self) -> Pending[list[tuple[str, list[str]]]]:
        def clients(rest: list[Any]) -> list[tuple[str, list[str]]]:
            found = []
            at = 0
            while at < len(rest):
                name, count = text_of(rest[at]), int(rest[at + 1])
                found.append((name, sorted(map(text_of, rest[at + 2 : at + 2 + count]))))
                at += 2 + count
            return sorted(found)

        return self._read(scripts.who, (), _NONE, clients)

    def history(
        self, name: str, scope: str, before: int | None, count: int
    ) -> Pending[HistoryPage]:
        member = self._member(name)
        scope = "direct" if scope.lower() == "direct" else _room(scope)
        return self._read(
            scripts.history,
            (member.key, scope),
            {b"no-sender": lambda: no_such_client(name), b"join-first": lambda: join_first(scope)},
            lambda rest: history_page(scope, [decode_event(raw) for raw in rest], before, count),
        )

    # Held sessions

    def resume(self, token: str, current: str, peer: Peer) -> Pending[Resumed]:
        index = self._index
        key = name_key(current)
        member = index.member(key)

        def resumed(rest: list[Any]) -> Resumed:
            name, dropped, count = text_of(rest[0]), int(rest[2]), int(rest[3])
            rooms = [text_of(room) for room in rest[4 : 4 + count]]
            return Resumed(name, rooms, list(rest[4 + count :]), dropped)

        def took_over(position: int, rest: list[Any]) -> LocalMember | None:
            if member is None:
                return None
            back = resumed(rest)
            return index.resume(
                member, text_of(rest[1]), name_key(back.name), peer.deliver, back.rooms, position
            )

        return self._change(
            scripts.resume,
            self._clock.wall(),
            (token, key),
            {
                b"bad-token": lambda: ChatError(UNKNOWN_TOKEN),
                b"no-sender": lambda: no_such_client(current),
                b"has-rooms": lambda: ChatError(RESUME_WITH_ROOMS),
            },
            resumed,
            took_over,
            held=member,
        )

    def expire(self) -> Pending[list[str]]:
        return self._change(
            scripts.expire, self._clock.wall(), (), _NONE, lambda rest: list(map(text_of, rest))
        )

    # Internals

    def _member(self, name: str) -> LocalMember:
        """The local member ``name`` (a session asks for itself, so it is here)."""
        member = self._index.member(name_key(name))
        if member is None:
            raise no_such_client(name)
        return member

    def _script(
        self,
        script: scripts.Script,
        when: str,
        arguments: Sequence[Any],
        on_reply: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Run ``script``; ``when`` is the time as its event lines show it."""
        self._commands.script(script, (*self._common, when, *arguments), on_reply, on_error)

    def _read(
        self,
        script: scripts.Script,
        arguments: Sequence[Any],
        refusals: Refusals,
        value: Callable[[list[Any]], T],
    ) -> Pending[T]:
        """Run a script that makes no event; its answer is settled as it comes."""
        pending: Pending[T] = Pending()

        def on_reply(reply: list[Any]) -> None:
            status, _, *rest = reply
            if status != b"ok":
                pending.set_exception(_refusal(status, refusals))
                return
            pending.set_result(value(rest))

        self._script(script, "", arguments, on_reply, pending.set_exception)
        return pending

    def _change(
        self,
        script: scripts.Script,
        now: float,
        arguments: Sequence[Any],
        refusals: Refusals,
        value: Callable[[list[Any]], T],
        change: Callable[[int, list[Any]], LocalMember | None] | None = None,
        *,
        held: LocalMember | None = None,
    ) -> Pending[T]:
        """Run a script that changes the cluster's state; its answer is settled once this
        node's reader has delivered the events up to its position, after ``change`` has
        made it take effect here. What reaches ``held`` waits meanwhile: it is released
        when the script is refused or fails, and ``change`` returns the member to release
        when it succeeds."""
        index = self._index
        ticket: Ticket | None = None
        if held is not None:
            index.hold(held)
            ticket = index.begin()
        pending: Pending[T] = Pending()

        def finish(member: LocalMember | None) -> None:
            if ticket is not None:
                index.end(ticket)
            if member is not None:
                index.release(member)

        def on_reply(reply: list[Any]) -> None:
            status, position, *rest = reply
            if status != b"ok":
                finish(held)
                pending.set_exception(_refusal(status, refusals))
                return
            answer = value(rest)

            def settle() -> None:
                changed = change(position, rest) if change is not None else None
                try:
                    pending.set_result(answer)
                finally:
                    finish(changed)

            index.when_reached(position, settle)

        def on_error(error: BaseException) -> None:
            finish(held)
            pending.set_exception(error)

        self._script(script, format_time(int(now)), arguments, on_reply, on_error)
        return pending


def _room(text: str) -> str:
    try:
        return room_name(text)
    except InvalidNameError as error:
        raise ChatError(str(error)) from None


def _refusal(status: bytes, refusals: Refusals) -> BaseException:
    make = refusals.get(status)
    if make is None:
        return BackendUnavailableError(f"unexpected answer from Redis: {status!r}")
    return make()


def _nothing(_: list[Any]) -> None:
    return None


def _by_number(record: SessionRecord) -> int:
    return record.number
