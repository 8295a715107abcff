"""The memory backend: one server's state in its own memory, the default.

It joins the registry (slots, numbers, the cache of sessions) and the chat hub (names,
rooms, messages, held sessions) behind the backend interface, and answers every
operation at once. Names have one authority here: the hub checks a new name (its
rules, and nobody else holding it in any case) before the registry records it.
"""

from __future__ import annotations

from ackchat.backend.interface import Admitted, Clock
from ackchat.chat.hub import ChatEvent, ChatHub, HistoryPage, Peer, Resumed
from ackchat.records import DisconnectReason, StatusSnapshot
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

    def admit(self, address: str, peer: Peer) -> Admitted | None:
        record = self._registry.admit(address, self._clock.wall())
        if record is None:
            return None
        return Admitted(record, self._hub.attach(record.name, peer))

    def depart(self, name: str, reason: DisconnectReason, hold: bool) -> None:
        now = self._clock.wall()
        self._hub.detach(name, now, hold, mono=self._clock.monotonic())
        self._registry.depart(name, reason, now)

    def rename(self, name: str, new_name: str) -> str:
        chosen = self._hub.rename(name, new_name, self._clock.wall())
        self._registry.rename(name, chosen)
        return chosen

    def snapshot(self, recent_limit: int | None) -> StatusSnapshot:
        return self._registry.snapshot(recent_limit)

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
        self._registry.rename(current, back.name)
        return back

    def expire(self) -> list[str]:
        return self._hub.expire(self._clock.wall(), mono=self._clock.monotonic())
