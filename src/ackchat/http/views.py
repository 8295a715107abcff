"""The admin API's answers as JSON-ready values, from what the backend and the server know.

Pure: each function takes the backend's answers (a status snapshot, who is in which
room) and this server's own counts, and shapes them; app.py fetches and serves them.
The backend's answers cover the whole service (in cluster mode every node), so the
views are the same in embedded and cluster mode; what only the serving node knows (how
long a client has been idle, its traffic) is there for its own clients and ``null`` for
the others'. Times are ISO 8601 local times with their UTC offset, as ``status`` shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ackchat.chat.names import name_key
from ackchat.protocol.replies import HIDDEN_ADDRESS, format_time
from ackchat.records import SessionRecord, StatusSnapshot

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LocalClient:
    """What this server knows of one of its own connected clients."""

    idle_seconds: float
    lines_in: int
    lines_out: int
    bytes_in: int
    bytes_out: int


def session_view(record: SessionRecord, show_address: bool) -> JSON:
    """One cache entry: a connected or departed client."""
    ended = record.disconnected_at
    return {
        "name": record.name,
        "address": record.address if show_address else HIDDEN_ADDRESS,
        "node": record.node,
        "connected_at": format_time(int(record.connected_at)),
        "disconnected_at": None if ended is None else format_time(int(ended)),
        "reason": None if record.reason is None else str(record.reason),
        "earlier_names": list(record.earlier_names),
    }


def status_view(
    snapshot: StatusSnapshot,
    *,
    show_addresses: bool,
    refused: Iterable[tuple[str, int]],
    chat_losses: Iterable[tuple[str, int]],
    limits: Mapping[str, object],
    rooms: Iterable[tuple[str, int]],
    counters: Mapping[str, object],
) -> JSON:
    """What ``status`` shows, as JSON: the totals, the sessions with their reasons, the
    counts of refusals and chat losses (every reason, zeros included), the live limits,
    the rooms, and this server's own ``counters`` (as ``/metrics`` has them)."""
    return {
        "connected": snapshot.connected,
        "max_clients": snapshot.max_clients,
        "over_limit": snapshot.connected > snapshot.max_clients,
        "seen": snapshot.seen,
        "rejected": snapshot.rejected,
        "dropped": snapshot.dropped,
        "hidden": snapshot.hidden,
        "refused": {str(reason): count for reason, count in sorted(refused)},
        "chat": {str(loss): count for loss, count in sorted(chat_losses)},
        "limits": dict(limits),
        "rooms": [{"name": room, "members": members} for room, members in rooms],
        "counters": dict(counters),
        "sessions": [session_view(record, show_addresses) for record in snapshot.sessions],
    }


def client_view(
    record: SessionRecord, rooms: list[str], mine: LocalClient | None, show_address: bool
) -> JSON:
    """One connected client, with its rooms and, if it is this server's own, its idle
    time and traffic (``null`` for another node's)."""
    return {
        **{
            field: value
            for field, value in session_view(record, show_address).items()
            if field not in ("disconnected_at", "reason")
        },
        "idle_seconds": None if mine is None else round(mine.idle_seconds, 3),
        "lines_in": None if mine is None else mine.lines_in,
        "lines_out": None if mine is None else mine.lines_out,
        "bytes_in": None if mine is None else mine.bytes_in,
        "bytes_out": None if mine is None else mine.bytes_out,
        "rooms": rooms,
    }


def clients_view(
    snapshot: StatusSnapshot,
    who: Iterable[tuple[str, list[str]]],
    local: Mapping[str, LocalClient],
    *,
    show_addresses: bool,
) -> JSON:
    """The connected clients, in the order they connected, with their rooms and, for this
    server's own (``local``, by :func:`~ackchat.chat.names.name_key`), idle time and traffic."""
    rooms = {name_key(name): joined for name, joined in who}
    clients = [
        client_view(
            record, rooms.get(key := name_key(record.name), []), local.get(key), show_addresses
        )
        for record in snapshot.sessions
        if record.disconnected_at is None
    ]
    return {"connected": len(clients), "max_clients": snapshot.max_clients, "clients": clients}


def dashboard_view(
    snapshot: StatusSnapshot,
    who: Iterable[tuple[str, list[str]]],
    rooms: Iterable[tuple[str, int]],
    local: Mapping[str, LocalClient],
    *,
    show_addresses: bool,
    query: str,
    limit: int,
    departures: int,
    room_limit: int,
    members: int,
) -> JSON:
    """What the dashboard shows, bounded whatever the number of clients and rooms.

    The totals; at most ``limit`` of the connected clients whose name, node or (when it
    is shown) address holds ``query`` (in any case), in the order they connected, with
    how many match; the ``departures`` latest departures, newest first; and the
    ``room_limit`` largest rooms with their sizes and up to ``members`` of their
    connected members' names, with how many rooms there are.
    """
    joined = {name_key(name): rooms_of for name, rooms_of in who}
    wanted = query.casefold()
    connected = [record for record in snapshot.sessions if record.disconnected_at is None]
    matching = [record for record in connected if _matches(record, wanted, show_addresses)]
    shown = [
        client_view(
            record, joined.get(key := name_key(record.name), []), local.get(key), show_addresses
        )
        for record in matching[:limit]
    ]
    gone = sorted(
        (record for record in snapshot.sessions if record.disconnected_at is not None),
        key=lambda record: (record.disconnected_at or 0.0, record.number),
        reverse=True,
    )
    largest = sorted(rooms, key=lambda room: (-room[1], room[0]))
    names_in: dict[str, list[str]] = {}
    for name, rooms_of in who:
        for room in rooms_of:
            names_in.setdefault(room, []).append(name)
    return {
        "connected": snapshot.connected,
        "max_clients": snapshot.max_clients,
        "over_limit": snapshot.connected > snapshot.max_clients,
        "seen": snapshot.seen,
        "rejected": snapshot.rejected,
        "dropped": snapshot.dropped,
        "clients": {"query": query, "matching": len(matching), "shown": shown},
        "departures": [session_view(record, show_addresses) for record in gone[:departures]],
        "rooms": {
            "count": len(largest),
            "shown": [
                {"name": room, "members": size, "names": names_in.get(room, [])[:members]}
                for room, size in largest[:room_limit]
            ],
        },
    }


def _matches(record: SessionRecord, wanted: str, show_address: bool) -> bool:
    """Whether a client's name, node or (if shown) address holds ``wanted`` (casefolded).

    A hidden address is not searched: the count of matches would tell it.
    """
    if not wanted:
        return True
    return (
        wanted in record.name.casefold()
        or wanted in record.node.casefold()
        or (show_address and wanted in record.address.casefold())
    )


def error_view(message: str, field: str | None = None) -> JSON:
    """A refusal: one sentence, and the field at fault when there is one."""
    return {"error": message, "field": field}
