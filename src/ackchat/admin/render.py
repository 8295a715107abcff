"""The admin API's answers as plain text, for a terminal: pure functions of the JSON.

``status`` reads as the ``status`` command's reply does (its lines are made by the same
code, in :mod:`ackchat.protocol.replies`), followed by the rooms and the live limits.
Text that came from clients (names, rooms) is sanitised as for any terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from ackchat.protocol.replies import END_OF_BLOCK, sanitize, status_lines


class _Session(NamedTuple):
    """A session of ``/api/status`` as ``status_lines`` reads it."""

    name: str
    address: str
    connected_at: float
    disconnected_at: float | None
    reason: str | None
    earlier_names: tuple[str, ...]
    node: str


class _Snapshot(NamedTuple):
    """``/api/status``'s totals and sessions as ``status_lines`` reads them."""

    sessions: list[_Session]
    connected: int
    max_clients: int
    seen: int
    rejected: int
    dropped: int
    hidden: int


def _timestamp(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def status_text(answer: Mapping[str, Any]) -> list[str]:
    """``GET /api/status`` as lines: the ``status`` block, the rooms, the limits."""
    sessions = [
        _Session(
            entry["name"],
            entry["address"],
            _timestamp(entry["connected_at"]) or 0.0,
            _timestamp(entry["disconnected_at"]),
            entry["reason"],
            tuple(entry["earlier_names"]),
            entry.get("node") or "",
        )
        for entry in answer["sessions"]
    ]
    snapshot = _Snapshot(
        sessions,
        answer["connected"],
        answer["max_clients"],
        answer["seen"],
        answer["rejected"],
        answer["dropped"],
        answer["hidden"],
    )
    block = list(status_lines(snapshot, True, answer["refused"].items(), answer["chat"].items()))
    lines = [text for text in block if text != END_OF_BLOCK]
    rooms = ", ".join(f"{sanitize(room['name'])} {room['members']}" for room in answer["rooms"])
    lines.append(f"rooms: {rooms or 'none'}")
    lines.append(
        "limits: " + ", ".join(f"{key} {value}" for key, value in answer["limits"].items())
    )
    return lines


def clients_text(answer: Mapping[str, Any]) -> list[str]:
    """``GET /api/clients`` as a table, one client a row."""
    rows = [("NAME", "ADDRESS", "CONNECTED", "IDLE", "IN", "OUT", "ROOMS")]
    for client in answer["clients"]:
        idle = client["idle_seconds"]
        rows.append(
            (
                sanitize(client["name"]),
                sanitize(client["address"]),
                client["connected_at"],
                "-" if idle is None else f"{idle:.0f}s",
                _count(client["lines_in"]),
                _count(client["lines_out"]),
                " ".join(sanitize(room) for room in client["rooms"]) or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.append(f"{answer['connected']} of {answer['max_clients']} clients connected")
    return lines


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def changed_text(answer: Mapping[str, Any], key: str) -> list[str]:
    """``PATCH /api/config``: what changed from what to what, or that nothing did."""
    changed = answer["changed"]
    if not changed:
        return [f"{key} is {answer['limits'][key]} already: nothing changed"]
    return [f"{name} {change['from']} -> {change['to']}" for name, change in changed.items()]


def kicked_text(answer: Mapping[str, Any]) -> list[str]:
    """``DELETE /api/clients/{name}``."""
    return [f"kicked {sanitize(answer['kicked'])}"]


def drain_text(answer: Mapping[str, Any]) -> list[str]:
    """``POST /api/drain``."""
    where = f" (to {answer['redirect']})" if answer["redirect"] else ""
    count = answer["connections"]
    return [
        f"draining: {count} connection{'' if count == 1 else 's'} told to reconnect{where};"
        f" the server exits once they have left, or after {answer['timeout']:g} seconds"
    ]
