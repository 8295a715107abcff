"""How records, events and stream entries look in Redis, both ways; no I/O here.

Session records and kept events are JSON arrays, which the Lua scripts read and change
with ``cjson``. Times travel as ``repr`` strings, so a float comes back exactly as it
went (cjson would round numbers to 14 digits), and the names a session had are one
string joined by spaces (names cannot hold one). A stream entry carries a header saying
who it is for (``r <from> <room>``, ``a <from>``, ``d <to>``) and the encoded event line,
or is a notice for the nodes (``n <node> <what>``) and its text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ackchat.chat.hub import ChatEvent
from ackchat.records import DisconnectReason, SessionRecord


def time_text(moment: float) -> str:
    """A time as the scripts keep it: the float's shortest exact text."""
    return repr(moment)


def encode_record(record: SessionRecord) -> str:
    """A session record as its JSON array (see the module docstring)."""
    return json.dumps(
        [
            record.number,
            record.name,
            record.address,
            time_text(record.connected_at),
            "" if record.disconnected_at is None else time_text(record.disconnected_at),
            "" if record.reason is None else str(record.reason),
            " ".join(record.earlier_names),
            record.node,
        ]
    )


def decode_record(raw: bytes | str) -> SessionRecord:
    """The session record a script kept."""
    number, name, address, connected, disconnected, reason, earlier, node = json.loads(raw)
    return SessionRecord(
        int(number),
        name,
        address,
        float(connected),
        float(disconnected) if disconnected else None,
        DisconnectReason(reason) if reason else None,
        tuple(earlier.split(" ")) if earlier else (),
        node,
    )


def decode_event(raw: bytes | str) -> ChatEvent:
    """A kept room or direct message: ``[id, time, scope, sender, text]``."""
    eid, moment, scope, sender, text = json.loads(raw)
    return ChatEvent(int(eid), float(moment), scope, sender, text)


@dataclass(frozen=True, slots=True)
class Entry:
    """One event of the cluster's stream, as a node's reader sees it."""

    id: int
    # "r": a room's (``who`` sent it), "a": everyone's (``who`` sent it), "d": one
    # client's (``who`` is the recipient), "n": a notice for the nodes (``who`` is the
    # node it is about, ``room`` what happened: beat, lost, max_clients).
    kind: str
    who: str
    room: str
    # The encoded event line, exactly as the memory backend delivers it (a notice's text).
    data: bytes


ROOM = "r"
ALL = "a"
DIRECT = "d"
NOTICE = "n"


def decode_entry(entry_id: bytes, fields: list[bytes]) -> Entry:
    """A stream entry from XREAD: its id (``<event id>-0``) and its fields (h: header,
    d: data; t, the time Redis wrote it, is read by the reader's lag metric)."""
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    kind, who, *rest = values[b"h"].decode().split(" ", 2)
    return Entry(int(entry_id.split(b"-", 1)[0]), kind, who, rest[0] if rest else "", values[b"d"])


def text_of(value: Any) -> str:
    """A bulk string reply as text (names, rooms and ids are ASCII)."""
    return value.decode() if isinstance(value, bytes) else str(value)
