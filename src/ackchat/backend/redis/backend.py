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

Every live setting is the cluster's: ``max_clients`` and the others (the idle timeout,
the rate limits, ``status_recent``, the history sizes) live in Redis, set by whichever
node changes them; a notice on the stream tells every node, whose server adopts them
(:meth:`RedisBackend.watch_settings`). The first node to join sets them from its own
settings; a node that joins later runs with the cluster's. A kick, asked for on any
node, is a notice to the node the client is on, which disconnects it.

Faults (docs/CLUSTER.md, "Faults"): the node beats every third of its heartbeat TTL
(liveness.py); a beat reaps the nodes whose heartbeat expired, as ``node lost``, and is
a probe of the node's own reader, which is reconnected when it does not hear it. While
Redis cannot be reached, operations are refused at once, ``status`` answers from the
last view, and departures are kept to be recorded later. On every new connection the
node beats first (so that nobody reaps it), then records those departures and
registers its live clients again under their names; a Redis that lost its data gets a
new run, whose stream the node reads from its start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

from ackchat.backend.interface import (
    Admitted,
    BackendUnavailableError,
    Clock,
    Evictable,
    Kickable,
    SettingsListener,
    SettingValue,
    kick_peer,
)
from ackchat.backend.pending import Pending
from ackchat.backend.redis import scripts
from ackchat.backend.redis.codec import (
    Entry,
    decode_event,
    decode_record,
    text_of,
    time_text,
)
from ackchat.backend.redis.commands import (
    Ask,
    Command,
    CommandConnection,
    log_crash,
    script_command,
    where,
)
from ackchat.backend.redis.fanout import StreamReader
from ackchat.backend.redis.keys import ClusterKeys
from ackchat.backend.redis.liveness import LinkCounts, Liveness, reconnect_delays
from ackchat.backend.redis.local import LocalIndex, LocalMember, Registration, Ticket
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
from ackchat.protocol import replies
from ackchat.protocol.replies import format_time, sanitize
from ackchat.records import DisconnectReason, SessionRecord, StatusSnapshot
from ackchat.registry import client_name

log = logging.getLogger("ackchat.server")

T = TypeVar("T")

# Events the cluster's stream keeps (about: Redis trims whole blocks of them). A node
# that falls further behind is told how many it lost.
STREAM_LIMIT = 100_000
# Seconds after which a node's heartbeat expires unless it beats again.
HEARTBEAT_TTL = 5.0
# Seconds a closing node waits for Redis to drop its heartbeat (so that the others reap
# what it leaves at once, not a TTL later).
CLOSE_TIMEOUT = 2.0
# What re-registration says of each outcome (scripts.REREGISTER), in the log.
_OUTCOMES = {
    "ok": "as they were",
    "back": "taken back from the held sessions (this node had been reaped)",
    "restored": "registered anew (the cluster had forgotten them)",
    "taken": "closed, their names being other sessions' now",
}

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
        heartbeat_ttl: float = HEARTBEAT_TTL,
        live_settings: Mapping[str, SettingValue] | None = None,
    ) -> None:
        """``live_settings``: the node's other live settings (the idle timeout, the rate
        limits...), shared with the cluster if it has none yet."""
        if max_clients < 1:
            raise ValueError("max_clients must be a positive integer")
        if history_limit < 0:
            raise ValueError("history_limit must not be negative")
        self.node_id = node_id
        self._url = url
        self._cluster_name = cluster_name
        self._keys = keys = ClusterKeys(cluster_name)
        self._clock = clock
        self._max_clients = max_clients
        self._history_limit = history_limit
        self._room_history = room_history
        self._direct_history = direct_history
        self._resume_grace = resume_grace
        self._node_max_clients = node_max_clients
        # The live settings besides max_clients, as the cluster has them (as last heard).
        self._shared: dict[str, SettingValue] = {
            **(live_settings or {}),
            **self._sizes(),
        }
        self._listener: SettingsListener = _unwatched
        # The arguments every script starts with (see scripts.py) but the time, encoded
        # once.
        common = (keys.event_seq, keys.prefix, stream_limit, resume_buffer)
        self._common = tuple(str(value).encode() for value in common)
        self._index = LocalIndex()
        self._index.on_notice = self._notice
        self._tokens = TokenSource()
        self._liveness = Liveness(heartbeat_ttl)
        # This process, as its heartbeat says (another process beating as the same node
        # is told apart by it).
        self._instance = secrets.token_hex(8)
        # Whether the first connection learnt the cluster's state (start).
        self._joined = False
        # The run whose state holds this node's clients, as last registered.
        self._registered_run = ""
        self._registering = False
        # Departures Redis could not hear of (it was unreachable): recorded on reconnection.
        self._owed: list[Command] = []
        # The last status snapshot and when it was taken: shown while Redis is lost.
        self._view: StatusSnapshot | None = None
        self._view_at = 0.0
        self._beating: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        client = f"ackchat:{cluster_name}:{node_id}"

        def delays() -> Iterator[float]:
            return reconnect_delays(heartbeat_ttl)

        self._commands = CommandConnection(
            url,
            f"{client}:commands",
            scripts.LIBRARY,
            recover=self._recover,
            delays=delays,
            lost=self._liveness.disconnected,
        )
        self._reader = StreamReader(
            url, f"{client}:reader", keys.events, keys.run, self._index, delays
        )

    @property
    def round_trips(self) -> int:
        """Round trips to Redis for operations so far (pipelines sent)."""
        return self._commands.round_trips

    @property
    def missed_events(self) -> int:
        """Events this node never read because the stream was trimmed past it."""
        return self._index.missed

    @property
    def links(self) -> LinkCounts:
        """What this node counts of its links to Redis, as it stands now (for /metrics):
        a copy, which the links do not change afterwards."""
        commands, reader = self._commands, self._reader
        return LinkCounts(
            connected=commands.available,
            round_trips=self.round_trips,
            command_faults=dict(commands.faults.counts),
            command_reconnects=commands.faults.reconnects,
            reader_faults=dict(reader.faults.counts),
            reader_reconnects=reader.faults.reconnects,
            deaf_readers=self._liveness.deaf_readers,
            heartbeats=self._liveness.beats,
            missed_events=self.missed_events,
            lag_buckets=tuple(reader.lag.cumulative()),
            lag_sum=reader.lag.total,
        )

    async def start(self) -> None:
        """Connect, load the scripts, join the cluster (its limit, its run, a first beat,
        and an end to what an earlier process of this node left), start reading the
        stream and beating; raises BackendUnavailableError if Redis cannot be reached."""
        await self._commands.connect()
        try:
            await self._reader.connect()
        except BackendUnavailableError:
            await self._commands.close()
            raise
        self._beating = asyncio.create_task(self._beat_forever(), name="ackchat redis heartbeat")
        self._beating.add_done_callback(log_crash)
        log.info(
            "cluster mode: node %s of cluster %r, through Redis at %s (at most %d clients"
            " across the cluster)",
            self.node_id,
            self._cluster_name,
            where(self._url),
            self._max_clients,
        )

    async def close(self) -> None:
        """Stop beating, drop the heartbeat (the others reap at once what is left of this
        node), stop reading and sending; answers still waiting are given or failed."""
        for task in (self._beating, *self._background):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._commands.available:
            dropped = asyncio.get_running_loop().create_future()

            def done(_: object) -> None:
                if not dropped.done():
                    dropped.set_result(None)

            self._commands.submit(("DEL", self._keys.heartbeat(self.node_id)), done, done)
            await asyncio.wait({dropped}, timeout=CLOSE_TIMEOUT)
        await self._reader.close()
        await self._commands.close()

    @property
    def max_clients(self) -> int:
        """The cluster's limit as last seen (each admission and ``status`` refresh it)."""
        return self._max_clients

    def set_max_clients(self, value: int) -> Pending[None]:
        """Set the cluster's limit; every node's reader hears of the change and logs it."""
        if value < 1:
            raise ValueError("max_clients must be a positive integer")
        self._max_clients = value
        return self._read(scripts.set_max, (value, self.node_id), _NONE, _nothing)

    def set_history_sizes(
        self, history_limit: int, room_history: int, direct_history: int
    ) -> Pending[None]:
        """Trim what the cluster keeps to the new sizes, and share them: every node keeps
        to them from the notice on."""
        if min(history_limit, room_history, direct_history) < 0:
            raise ValueError("history sizes must not be negative")
        self._history_limit = history_limit
        self._room_history = room_history
        self._direct_history = direct_history
        sizes = self._sizes()
        self._shared.update(sizes)
        arguments = (
            history_limit,
            room_history,
            direct_history,
            self.node_id,
            json.dumps(_encoded(sizes)),
        )
        return self._read(scripts.resize, arguments, _NONE, _nothing)

    def share_settings(self, values: Mapping[str, SettingValue]) -> Pending[None]:
        """Set live settings for the cluster; every node's reader hears of the change,
        logs it, and its server runs with it."""
        self._shared.update(values)
        return self._read(
            scripts.share, (self.node_id, json.dumps(_encoded(values))), _NONE, _nothing
        )

    def watch_settings(self, listener: SettingsListener) -> None:
        """``listener`` hears the cluster's live settings when this node joins it, and
        every change from a notice (this node's own too)."""
        self._listener = listener

    def kick(self, name: str) -> Pending[SessionRecord | None]:
        """Tell the node the client is on to disconnect it; answered once this node's
        reader passed the notice (so a client of this node is gone by then)."""
        return self._change(
            scripts.kick,
            self._clock.wall(),
            (name_key(name), self.node_id),
            _NONE,
            lambda rest: decode_record(rest[0]) if rest else None,
        )

    # Sessions

    def admit(self, address: str, peer: Peer) -> Pending[Admitted | None]:
        now = self._clock.wall()
        token = self._tokens.new()
        index = self._index
        ticket = index.begin()
        pending: Pending[Admitted | None] = Pending()

        def on_reply(reply: list[Any]) -> None:
            status, position, *rest = reply
            if status == b"settling":
                index.end(ticket)
                pending.set_exception(
                    BackendUnavailableError("the cluster's live clients are registering again")
                )
                return
            if status != b"ok":
                self._max_clients = int(rest[0])
                index.end(ticket)
                pending.set_result(None)
                return
            number, self._max_clients = int(rest[0]), int(rest[1])
            record = SessionRecord(number, client_name(number), address, now, node=self.node_id)
            # (hasattr, not isinstance: a runtime protocol check costs 50 times more)
            evict = cast(Evictable, peer).evict if hasattr(peer, "evict") else peer.deliver
            kick = cast(Kickable, peer).kick if hasattr(peer, "kick") else None
            registration = Registration(record.name, token, address, now, (), evict, kick)

            def settle() -> None:
                mid = str(number)
                member = index.attach(
                    mid, name_key(record.name), mid, peer.deliver, position, registration
                )
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
        recorded = self._change(scripts.depart, now, arguments, _NONE, _nothing)
        answer: Pending[None] = Pending()

        def settled(result: Pending[None]) -> None:
            try:
                result.result()
            except BackendUnavailableError:
                # Recorded once Redis is back (departing twice changes nothing).
                when = format_time(int(now))
                self._owed.append(script_command(scripts.depart, (*self._common, when, *arguments)))
            answer.set_result(None)

        recorded.add_done_callback(settled)
        return answer

    def rename(self, name: str, new_name: str) -> Pending[str]:
        try:
            check_name(new_name)
        except InvalidNameError as error:
            raise ChatError(str(error)) from None
        member = self._member(name)
        new_key = name_key(new_name)

        def renamed(_: int, __: list[Any]) -> None:
            self._index.rename(member, new_key)
            if member.registration is not None:
                member.registration = member.registration.renamed(new_name)

        return self._change(
            scripts.rename,
            self._clock.wall(),
            (name, member.key, new_name, new_key),
            {b"no-sender": lambda: no_such_client(name), b"taken": lambda: name_taken(new_name)},
            lambda _: new_name,
            renamed,
        )

    def snapshot(self, recent_limit: int | None) -> Pending[StatusSnapshot]:
        """The cluster's cache; while Redis cannot be reached, the last one this node saw
        (marked with when it was taken), if it saw one."""
        limit = -1 if recent_limit is None else recent_limit
        taken = self._clock.wall()

        def snapshot(rest: list[Any]) -> StatusSnapshot:
            max_clients, seen, rejected, dropped, departed, connected = map(int, rest[:6])
            self._max_clients = max_clients
            records = [decode_record(raw) for raw in rest[6:]]
            records.sort(key=_by_number)
            self._view_at = taken
            self._view = StatusSnapshot(
                sessions=records,
                connected=connected,
                max_clients=max_clients,
                seen=seen,
                rejected=rejected,
                dropped=dropped,
                hidden=departed - (len(records) - connected),
            )
            return self._view

        asked = self._read(scripts.snapshot, (limit,), _NONE, snapshot)
        answer: Pending[StatusSnapshot] = Pending()

        def settled(result: Pending[StatusSnapshot]) -> None:
            try:
                answer.set_result(result.result())
            except BackendUnavailableError as error:
                if self._view is None:
                    answer.set_exception(error)
                else:
                    answer.set_result(replace(self._view, as_of=self._view_at))

        asked.add_done_callback(settled)
        return answer

    # Messages

    def version(self) -> Pending[tuple[int, ...]]:
        """Two plain reads in one batch (one round trip, no script): the cluster's
        sessions admitted, departed (kept or dropped), turned away, and its limit."""
        keys = self._keys
        pending: Pending[tuple[int, ...]] = Pending()
        counts: list[int] = []

        def on_counts(reply: list[bytes | None]) -> None:
            counts.extend(int(value or 0) for value in reply)

        def on_kept(kept: int) -> None:
            if not pending.done:
                admitted, dropped, rejected, limit = counts
                pending.set_result((admitted, dropped + kept, rejected, limit))

        def on_error(error: BaseException) -> None:
            if not pending.done:
                pending.set_exception(error)

        counted = ("MGET", keys.session_seq, keys.dropped, keys.rejected, keys.max_clients)
        self._commands.submit(counted, on_counts, on_error)
        self._commands.submit(("LLEN", keys.departed), on_kept, on_error)
        return pending

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
            registration = member.registration
            if registration is not None:
                registration = registration.renamed(back.name)._replace(token=token)
            return index.resume(
                member,
                text_of(rest[1]),
                name_key(back.name),
                peer.deliver,
                back.rooms,
                position,
                registration,
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

    # The node's upkeep: joining, beating, and registering its clients again

    async def _recover(self, ask: Ask) -> None:
        """On every new connection, before any operation: (the first time) learn the
        cluster's limit, position and run; beat, so that nobody reaps this node; record
        the departures Redis did not hear of; register the live clients again (and end
        the sessions this node has no more), then record who left meanwhile."""
        keys, index = self._keys, self._index
        rejoining = self._joined
        if not rejoining:
            own = _encoded(self._shared)
            *_, cluster_max, live, position, _, run = await ask(
                ("SET", keys.max_clients, self._max_clients, "NX"),
                *(("HSETNX", keys.live, name, value) for name, value in own.items()),
                ("GET", keys.max_clients),
                ("HGETALL", keys.live),
                ("GET", keys.event_seq),
                ("SET", keys.run, secrets.token_hex(8), "NX"),
                ("GET", keys.run),
            )
            if int(cluster_max) != self._max_clients:
                log.info(
                    "joined the cluster: running with its max_clients %s (this node had %d;"
                    " change it with SIGHUP or PATCH /api/config on any node)",
                    cluster_max.decode() if isinstance(cluster_max, bytes) else cluster_max,
                    self._max_clients,
                )
            self._max_clients = int(cluster_max)
            self._adopt(_decoded(live), "joined the cluster: running with its live settings")
            index.applied = int(position or 0)
            index.run = self._registered_run = text_of(run)
            self._joined = True
        (beat,) = await ask(self._beat_command(may_reap=False))
        if self._beaten(beat)[0] and rejoining:
            # The reader started before (at the first join it has not started yet).
            await self._reader.restart()
        await self._record_owed(ask)
        members = self._registrable()
        run = index.run
        (registered,) = await ask(self._register_command(members))
        self._registered(registered, members, run)
        await self._record_owed(ask)
        self._liveness.connected(self._clock.monotonic())

    async def _record_owed(self, ask: Ask) -> None:
        """Record the departures Redis did not hear of, those that come meanwhile too."""
        while self._owed:
            owed, self._owed = self._owed, []
            try:
                await ask(*owed)
            except BaseException:
                self._owed[:0] = owed
                raise

    async def _beat_forever(self) -> None:
        """Beat every third of the TTL (reaping the dead once this node may); reconnect
        the reader when it has not heard a beat for a TTL."""
        liveness = self._liveness
        while True:
            await asyncio.sleep(liveness.interval)
            now = self._clock.monotonic()
            if liveness.deaf(self._index.applied, now):
                log.warning(
                    "event stream reader is deaf: it has not heard this node's own heartbeat"
                    " in %g seconds; reconnecting it",
                    liveness.ttl,
                )
                liveness.reader_restarted()
                await self._reader.restart()
            if self._commands.available:
                self._commands.submit(
                    self._beat_command(liveness.may_reap(now)), self._beat_answered, _unheard
                )

    def _beat_command(self, may_reap: bool) -> Command:
        now = self._clock.wall()
        arguments = (
            self.node_id,
            self._instance,
            max(1, round(self._liveness.ttl * 1000)),
            int(may_reap),
            time_text(now),
            repr(self._resume_grace),
            self._history_limit,
            secrets.token_hex(8),
        )
        return script_command(scripts.beat, (*self._common, format_time(int(now)), *arguments))

    def _beaten(self, reply: list[Any]) -> tuple[bool, bool]:
        """Take in a beat's answer: whether the index started over on a new run (its
        reader must read the new stream), and whether the clients must be registered
        again (this node's heartbeat had expired, or the run is not theirs)."""
        _, eid, run, previous = reply
        run, previous = text_of(run), text_of(previous)
        started_over = self._index.observe_run(run)
        if started_over:
            log.warning(
                "the cluster's stream started over (Redis lost its data); reading it from its start"
            )
            self._liveness.reader_restarted()
        if previous and previous != self._instance:
            log.warning(
                "another process beat as node %s less than %g seconds ago: an earlier process"
                " of this node (what it left is recorded as node lost), or another node with"
                " the same --node-id (give each its own)",
                self.node_id,
                self._liveness.ttl,
            )
        self._liveness.beat_sent(int(eid), self._clock.monotonic())
        return started_over, previous != self._instance or run != self._registered_run

    def _beat_answered(self, reply: list[Any]) -> None:
        started_over, unregistered = self._beaten(reply)
        if started_over:
            self._spawn(self._reader.restart())
        if unregistered and not self._registering:
            self._register_again()

    def _register_again(self) -> None:
        """Register the live clients again while connected (the heartbeat had expired,
        or Redis lost its data without closing the connection)."""
        self._registering = True
        members = self._registrable()
        run = self._index.run

        def on_reply(reply: list[Any]) -> None:
            self._registering = False
            self._registered(reply, members, run)

        def on_error(_: BaseException) -> None:
            # The connection failed: its recovery registers them.
            self._registering = False

        self._commands.submit(self._register_command(members), on_reply, on_error)

    def _registrable(self) -> list[tuple[LocalMember, Registration]]:
        return [
            (member, member.registration)
            for member in self._index.members()
            if member.registration is not None
        ]

    def _register_command(self, members: list[tuple[LocalMember, Registration]]) -> Command:
        now = self._clock.wall()
        clients = [
            [
                member.session,
                member.mid,
                registration.name,
                member.key,
                registration.token,
                registration.address,
                time_text(registration.connected_at),
                " ".join(registration.earlier_names),
                sorted(member.rooms),
            ]
            for member, registration in members
        ]
        arguments = (
            self.node_id,
            time_text(now),
            repr(self._resume_grace),
            self._history_limit,
            self._max_clients,
            json.dumps(_encoded(self._shared)),
            json.dumps(clients),
        )
        return script_command(
            scripts.reregister, (*self._common, format_time(int(now)), *arguments)
        )

    def _registered(
        self, reply: list[Any], members: list[tuple[LocalMember, Registration]], run: str
    ) -> None:
        """Take in what registering ``members`` again under ``run`` did: renumber the
        ones given new numbers, close the ones whose names are others' now, and log it."""
        _, _, ended, *outcomes = reply
        index = self._index
        counts: Counter[str] = Counter()
        for (member, registration), outcome, mid, number in zip(
            members, outcomes[::3], outcomes[1::3], outcomes[2::3], strict=True
        ):
            what = text_of(outcome)
            counts[what] += 1
            if index.member(member.key) is not member:
                continue
            if what == "taken":
                index.detach(member)
                registration.evict(replies.line(replies.NAME_TAKEN))
            elif (text_of(mid), text_of(number)) != (member.mid, member.session):
                index.renumber(member, text_of(mid), text_of(number))
        new_run = run != self._registered_run
        self._registered_run = run
        said = [f"{count} {_OUTCOMES[what]}" for what, count in sorted(counts.items())]
        if int(ended):
            said.append(f"{int(ended)} this node does not have any more, recorded as node lost")
        if said or new_run:
            # Only a client the cluster kept as it was is no news.
            news = new_run or int(ended) or set(counts) - {"ok"}
            log.log(
                logging.WARNING if news else logging.INFO,
                "%sthis node's clients registered with the cluster again: %s",
                "a new run of the cluster began (Redis lost its data); " if new_run else "",
                ", ".join(said) or "none",
            )

    def _notice(self, entry: Entry) -> None:
        """A notice for the nodes from the stream: a node lost, a new limit, new live
        settings, a kick."""
        what, text = entry.room, entry.data.decode()
        if what == "lost":
            reaper, count = text.split(" ")
            log.warning(
                "node %s lost (its heartbeat expired): node %s recorded its %s clients as"
                " node lost",
                entry.who,
                reaper,
                count,
            )
        elif what == "max_clients":
            old, new = text.split(" ")
            self._max_clients = int(new)
            log.info("max_clients %s -> %s (set on node %s)", old, new, entry.who)
        elif what == "live":
            words = text.split(" ")
            changes = list(zip(words[::3], words[1::3], words[2::3], strict=True))
            log.info(
                "%s (set on node %s)",
                ", ".join(f"{name} {old} -> {new}" for name, old, new in changes),
                entry.who,
            )
            self._adopt({name: json.loads(new) for name, _, new in changes})
        elif what == "kick" and entry.who == self.node_id:
            mid, session, asker = text.split(" ")
            self._kicked(mid, session, asker)

    def _adopt(self, values: Mapping[str, SettingValue], joining: str = "") -> None:
        """Run with the cluster's live settings ``values`` (the history sizes apply to
        what this node asks Redis to keep) and tell the listener; ``joining``: say so, if
        they differ from this node's own."""
        differ = {
            name: (self._shared.get(name), value)
            for name, value in values.items()
            if self._shared.get(name) != value
        }
        self._shared.update(values)
        self._history_limit = int(self._shared["history_limit"])
        self._room_history = int(self._shared["room_history"])
        self._direct_history = int(self._shared["direct_history"])
        self._listener(values)
        if joining and differ:
            log.info(
                "%s %s",
                joining,
                ", ".join(
                    f"{name} {new} (this node had {old})" for name, (old, new) in differ.items()
                ),
            )

    def _kicked(self, mid: str, session: str, asker: str) -> None:
        """An operator on node ``asker`` kicked a client of this node: disconnect it,
        unless that session is gone already."""
        member = self._index.member_by_id(mid)
        if member is None or member.session != session or member.registration is None:
            return
        registration = member.registration
        log.info("%s kicked (asked for on node %s)", registration.name, asker)

        def depart() -> None:
            self.depart(registration.name, DisconnectReason.KICKED, hold=False)

        kick_peer(registration.kick, registration.evict, depart)

    def _sizes(self) -> dict[str, SettingValue]:
        """The history sizes this node keeps to, as live settings."""
        return {
            "history_limit": self._history_limit,
            "room_history": self._room_history,
            "direct_history": self._direct_history,
        }

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(log_crash)

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


def _unwatched(_: Mapping[str, SettingValue]) -> None:
    """Nobody listens for the cluster's live settings."""


def _encoded(values: Mapping[str, SettingValue]) -> dict[str, str]:
    """Live settings as Redis keeps them: each value as its JSON text."""
    return {name: json.dumps(value) for name, value in values.items()}


def _decoded(pairs: list[bytes]) -> dict[str, SettingValue]:
    """Live settings from HGETALL's flat list of names and JSON texts."""
    return {
        text_of(name): json.loads(value)
        for name, value in zip(pairs[::2], pairs[1::2], strict=True)
    }


def _unheard(_: BaseException) -> None:
    """A beat Redis did not answer: the connection's recovery beats first thing."""


def _by_number(record: SessionRecord) -> tuple[int, bool]:
    """Connection order; a session its node took back after it was reaped comes after
    its ``node lost`` record (both have its number)."""
    return record.number, record.disconnected_at is None
