"""Who is connected, who was: naming, slots and the bounded cache of sessions.

The registry is plain Python without I/O or clocks (callers pass the time in), so it
can be tested directly. It is one half of the memory backend (ackchat.backend.memory);
it trusts the backend to have checked a new name, so names have one authority.
"""

from __future__ import annotations

from collections import deque

from ackchat.records import DisconnectReason, SessionRecord, StatusSnapshot


def client_name(number: int) -> str:
    """The assigned name for the ``number``-th client: Client01, Client02, …, Client100."""
    return f"Client0{number}" if number < 10 else f"Client{number}"


class MemoryRegistry:
    """Sessions in this process's memory, reset when the server restarts."""

    def __init__(self, max_clients: int, history_limit: int) -> None:
        if history_limit < 0:
            raise ValueError("history_limit must not be negative")
        self.max_clients = max_clients
        self._connected: dict[str, SessionRecord] = {}
        # Departed sessions, oldest first; a full deque drops its oldest on append.
        self._departed: deque[SessionRecord] = deque(maxlen=history_limit)
        self._last_number = 0
        self._rejected = 0
        self._dropped = 0

    @property
    def max_clients(self) -> int:
        return self._max_clients

    @max_clients.setter
    def max_clients(self, value: int) -> None:
        if value < 1:
            raise ValueError("max_clients must be a positive integer")
        self._max_clients = value

    def set_history_limit(self, history_limit: int) -> None:
        """Keep at most ``history_limit`` departed sessions from now on; the oldest of the
        ones kept now are dropped (and counted as dropped) if there are more."""
        if history_limit < 0:
            raise ValueError("history_limit must not be negative")
        departed = self._departed
        self._dropped += max(len(departed) - history_limit, 0)
        self._departed = deque(departed, maxlen=history_limit)

    @property
    def connected_count(self) -> int:
        return len(self._connected)

    def admit(self, address: str, now: float) -> SessionRecord | None:
        if len(self._connected) >= self._max_clients:
            self._rejected += 1
            return None
        self._last_number += 1
        record = SessionRecord(
            self._last_number, client_name(self._last_number), address, connected_at=now
        )
        self._connected[record.name] = record
        return record

    def depart(self, name: str, reason: DisconnectReason, now: float) -> SessionRecord:
        record = self._connected.pop(name)
        ended = SessionRecord(
            record.number,
            record.name,
            record.address,
            record.connected_at,
            now,
            reason,
            record.earlier_names,
        )
        if len(self._departed) == self._departed.maxlen:
            self._dropped += 1
        self._departed.append(ended)
        return ended

    def rename(self, name: str, new_name: str) -> SessionRecord:
        record = self._connected.pop(name)
        renamed = record._replace(name=new_name, earlier_names=(*record.earlier_names, name))
        self._connected[new_name] = renamed
        return renamed

    def version(self) -> tuple[int, int, int, int]:
        """Sessions admitted, departed (kept or dropped), turned away, and the limit:
        what changes when :meth:`snapshot` does, without building one."""
        departed = len(self._departed) + self._dropped
        return self._last_number, departed, self._rejected, self._max_clients

    def snapshot(self, recent_limit: int | None) -> StatusSnapshot:
        departed = list(self._departed)
        hidden = 0
        if recent_limit is not None and len(departed) > recent_limit:
            hidden = len(departed) - recent_limit
            departed = departed[hidden:]
        sessions = departed + list(self._connected.values())
        sessions.sort(key=_by_number)
        return StatusSnapshot(
            sessions=sessions,
            connected=len(self._connected),
            max_clients=self._max_clients,
            seen=self._last_number,
            rejected=self._rejected,
            dropped=self._dropped,
            hidden=hidden,
        )


def _by_number(record: SessionRecord) -> int:
    return record.number
