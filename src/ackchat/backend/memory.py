"""The memory backend: one server's state in its own memory, the default.

It joins the registry (slots, numbers, the cache of sessions) and the chat hub (names,
rooms, messages, held sessions) behind the backend interface, and answers every
operation at once. Names have one authority here: the hub checks a new name (its
rules, and nobody else holding it in any case) before the registry records it. A kick
finds the client's peer here: every client is this server's.
"""

from __future__ import annotations

from collections.abc import Mapping

from ackchat.backend.interface import Admitted, Clock, SettingsListener, SettingValue, kick_peer
from ackchat.chat.hub import ChatEvent, ChatHub, HistoryPage, Peer, Resumed
from ackchat.chat.names import name_key
from ackchat.records import DisconnectReason, SessionRecord, StatusSnapshot
from ackchat.registry import MemoryRegistry


class MemoryBackend:
    """Every operation of :class:`~ackchat.backend.interface.Backend`, answered at once."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_clients: int,
        history_limit: int,
        room_history: int = 50,
        direct_history: int = 50,
        resume_grace: float = 60.0,
        resume_buffer: int = 200,
    ) -> None:
        self._clock = clock
        self._registry = MemoryRegistry(max_clients, history_limit)
        self._hub = ChatHub(
            room_history=room_history,
            direct_history=direct_history,
            resume_grace=resume_grace,
            resume_buffer=resume_buffer,
        )
        # The connected clients by name key: their session records and peers (for kick).
        self._connected: dict[str, tuple[SessionRecord, Peer]] = {}

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""

    @property
    def max_clients(self) -> int:
        return self._registry.max_clients

    def set_max_clients(self, value: int) -> None:
        self._registry.max_clients = value

    def set_history_sizes(self, history_limit: int, room_history: int, direct_history: int) -> None:
        self._registry.set_history_limit(history_limit)
        self._hub.set_history_sizes(room_history, direct_history)

    def share_settings(self, values: Mapping[str, SettingValue]) -> None:
        """One server is the whole service: its settings are the service's already."""

    def watch_settings(self, listener: SettingsListener) -> None:
        """Nothing changes without this server."""

    def kick(self, name: str) -> SessionRecord | None:
        connected = self._connected.get(name_key(name))
        if connected is None:
            return None
        record, peer = connected

        def depart() -> None:
            self.depart(record.name, DisconnectReason.KICKED, hold=False)

        return record if kick_peer(getattr(peer, "kick", None), peer.deliver, depart) else None

    def admit(self, address: str, peer: Peer) -> Admitted | None:
        record = self._registry.admit(address, self._clock.wall())
        if record is None:
            return None
        self._connected[name_key(record.name)] = (record, peer)
        return Admitted(record, self._hub.attach(record.name, peer))

    def depart(self, name: str, reason: DisconnectReason, hold: bool) -> None:
        now = self._clock.wall()
        self._connected.pop(name_key(name), None)
        self._hub.detach(name, now, hold, mono=self._clock.monotonic())
        self._registry.depart(name, reason, now)

    def rename(self, name: str, new_name: str) -> str:
        chosen = self._hub.rename(name, new_name, self._clock.wall())
        record = self._registry.rename(name, chosen)
        _, peer = self._connected.pop(name_key(name))
        self._connected[name_key(chosen)] = (record, peer)
        return chosen

    def snapshot(self, recent_limit: int | None) -> StatusSnapshot:
        return self._registry.snapshot(recent_limit)

    def version(self) -> tuple[int, ...]:
        return self._registry.version()

    def direct(self, sender: str, recipient: str, text: str) -> None:
        self._hub.direct(sender, recipient, text, self._clock.wall())

    def broadcast(self, sender: str, text: str) -> int:
        return self._hub.broadcast(sender, text, self._clock.wall())

    def say(self, sender: str, room: str, text: str) -> None:
        self._hub.say(sender, room, text, self._clock.wall())

    def join(self, name: str, room: str) -> tuple[str, int, list[ChatEvent]]:
        return self._hub.join(name, room, self._clock.wall())

    def leave(self, name: str, room: str) -> str:
        return self._hub.leave(name, room, self._clock.wall())

    def rooms(self) -> list[tuple[str, int]]:
        return self._hub.rooms()

    def members(self, room: str) -> tuple[str, list[str]]:
        return self._hub.members(room)

    def who(self) -> list[tuple[str, list[str]]]:
        return self._hub.who()

    def history(self, name: str, scope: str, before: int | None, count: int) -> HistoryPage:
        return self._hub.history(name, scope, before, count)

    def resume(self, token: str, current: str, peer: Peer) -> Resumed:
        back = self._hub.resume(
            token, current, peer, self._clock.wall(), mono=self._clock.monotonic()
        )
        record = self._registry.rename(current, back.name)
        del self._connected[name_key(current)]
        self._connected[name_key(back.name)] = (record, peer)
        return back

    def expire(self) -> list[str]:
        return self._hub.expire(self._clock.wall(), mono=self._clock.monotonic())
