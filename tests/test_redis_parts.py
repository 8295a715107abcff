"""The Redis backend's pure parts, without Redis: the key layout, the encodings, and the
local index that delivers the cluster's events to this node's clients."""

from __future__ import annotations

import re
from functools import partial

import pytest

from ackchat.backend.redis.codec import (
    ALL,
    DIRECT,
    ROOM,
    Entry,
    decode_entry,
    decode_event,
    decode_record,
    encode_record,
)
from ackchat.backend.redis.keys import FIXED, PER_KEY, ClusterKeys, key_prefix, lua_key_names
from ackchat.backend.redis.local import LocalIndex, LocalMember
from ackchat.chat.hub import ChatEvent
from ackchat.protocol import replies
from ackchat.records import DisconnectReason, SessionRecord

# Keys


def test_every_key_carries_the_cluster_in_one_hash_tag() -> None:
    keys = ClusterKeys("blue")
    assert keys.prefix == "{blue}:"
    for key in (keys.max_clients, keys.rooms, keys.event_seq, keys.events):
        # Redis Cluster hashes only what is inside the first {...}: the cluster's name.
        assert re.match(r"\{blue\}:", key), key
    assert key_prefix("a.b-c_1") == "{a.b-c_1}:"


@pytest.mark.parametrize("name", ["", "has space", "br{ace", "co:lon", "x" * 65])
def test_a_cluster_name_that_would_break_the_tag_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid cluster name"):
        key_prefix(name)


def test_the_lua_key_names_name_every_key_from_the_prefix() -> None:
    names = lua_key_names()
    assert names.startswith("local function key_names(P)\n")
    for name, suffix in FIXED.items():
        assert f"  K.{name} = P .. '{suffix}'" in names
    assert "  key.member = function(mid) return P .. 'm:' .. mid .. '' end" in names
    assert "  key.room_history = function(room) return P .. 'r:' .. room .. ':history' end" in (
        names
    )
    assert len(re.findall(r"^  key\.\w+ = function", names, re.MULTILINE)) == len(PER_KEY)
    assert names.endswith("  return K, key\nend\n")


# Encodings


@pytest.mark.parametrize(
    "record",
    [
        SessionRecord(1, "Client01", "127.0.0.1:5000", 1_700_000_000.123456, node="a:1"),
        SessionRecord(
            12,
            "Ann",
            "[::1]:6000",
            1_700_000_001.5,
            1_700_000_009.000001,
            DisconnectReason.CLOSED_BY_PEER,
            ("Client12", "ann", "ANN"),
            "b:2",
        ),
    ],
)
def test_a_record_comes_back_exactly_as_it_was_kept(record: SessionRecord) -> None:
    assert decode_record(encode_record(record)) == record
    assert decode_record(encode_record(record).encode()) == record


def test_kept_events_and_stream_entries_decode() -> None:
    raw = '[7, "1700000000.25", "#dev", "Ann", "caf\\u00e9 \\/ \\"quoted\\""]'
    assert decode_event(raw.encode()) == ChatEvent(
        7, 1_700_000_000.25, "#dev", "Ann", 'café / "quoted"'
    )
    line = b"@9 2023-11-14T22:13:20+00:00 #dev Ann: hi\n"
    assert decode_entry(b"9-0", [b"h", b"r 3 #dev", b"d", line]) == Entry(
        9, ROOM, "3", "#dev", line
    )
    assert decode_entry(b"10-0", [b"d", line, b"h", b"a 3"]) == Entry(10, ALL, "3", "", line)
    assert decode_entry(b"11-0", [b"h", b"d 4", b"d", line]) == Entry(11, DIRECT, "4", "", line)


# The local index


class Inbox:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def deliver(self, data: bytes) -> None:
        self.lines.append(data)


def line(eid: int, text: str = "x") -> bytes:
    return f"@{eid} t s x: {text}\n".encode()


def room(eid: int, sender: str, name: str = "#dev") -> Entry:
    return Entry(eid, ROOM, sender, name, line(eid))


def everyone(eid: int, sender: str) -> Entry:
    return Entry(eid, ALL, sender, "", line(eid))


def direct(eid: int, recipient: str) -> Entry:
    return Entry(eid, DIRECT, recipient, "", line(eid))


def attached(index: LocalIndex, mid: str, rooms: tuple[str, ...] = ()) -> tuple[LocalMember, Inbox]:
    """A member attached at the index's current position, in ``rooms``, released."""
    inbox = Inbox()
    member = index.attach(mid, f"name{mid}", mid, inbox.deliver, index.applied)
    index.release(member)
    for name in rooms:
        index.hold(member)
        index.join(member, name, index.applied)
        index.release(member)
    return member, inbox


def ids(inbox: Inbox) -> list[int]:
    return [int(data.split(b" ", 1)[0][1:]) for data in inbox.lines]


def test_events_reach_exactly_their_local_recipients_once() -> None:
    index = LocalIndex()
    index.set_online(True)
    _, ann = attached(index, "1", ("#dev",))
    _, bob = attached(index, "2", ("#dev",))
    _, cat = attached(index, "3")
    entries = [room(1, "1"), everyone(2, "2"), direct(3, "3"), direct(4, "9"), room(5, "9", "#ops")]
    index.receive(entries)
    index.receive(entries[1:])  # read again after a reconnection: repeats are dropped
    assert (ids(ann), ids(bob), ids(cat)) == ([2], [1], [2, 3])
    assert (index.applied, index.missed) == (5, 0)


def test_a_gap_in_the_stream_is_counted_and_told_to_every_client() -> None:
    index = LocalIndex()
    index.set_online(True)
    _, ann = attached(index, "1")
    _, bob = attached(index, "2")
    index.receive([everyone(1, "9"), everyone(40, "9")])
    assert index.missed == 38
    for inbox in (ann, bob):
        assert inbox.lines == [line(1), replies.missed_events(38), line(40)]


def test_an_admission_the_reader_overtook_gets_what_came_after_it_and_nothing_before() -> None:
    index = LocalIndex()
    index.set_online(True)
    ticket = index.begin()  # the admission is sent at position 0
    index.receive([everyone(1, "9"), direct(2, "5"), everyone(3, "9")])
    # Its reply says it ran after event 1: events 2 and 3 are replayed, held, then given.
    inbox = Inbox()
    member = index.attach("5", "name5", "5", inbox.deliver, 1)
    assert inbox.lines == []
    index.end(ticket)
    index.release(member)
    assert ids(inbox) == [2, 3]
    index.receive([everyone(4, "9")])
    assert ids(inbox) == [2, 3, 4]


def test_an_admission_ahead_of_the_reader_skips_what_came_before_it() -> None:
    index = LocalIndex()
    index.set_online(True)
    inbox = Inbox()
    settled: list[str] = []
    index.when_reached(2, lambda: settled.append("admitted"))
    member = index.attach("5", "name5", "5", inbox.deliver, 2)
    index.release(member)
    index.receive([everyone(1, "9")])
    assert settled == []
    index.receive([everyone(2, "9"), everyone(3, "9")])
    assert (settled, ids(inbox)) == (["admitted"], [3])


def test_a_join_the_reader_overtook_keeps_the_order_of_what_the_member_was_sent() -> None:
    index = LocalIndex()
    index.set_online(True)
    member, inbox = attached(index, "1")
    index.hold(member)
    ticket = index.begin()
    # The join ran at event 1; the reader passes a room message and a broadcast first.
    index.receive([room(1, "1"), room(2, "9"), everyone(3, "9"), room(4, "9")])
    assert inbox.lines == []
    index.join(member, "#dev", 1)
    index.end(ticket)
    index.release(member)
    assert ids(inbox) == [2, 3, 4]
    index.receive([room(5, "9")])
    assert ids(inbox) == [2, 3, 4, 5]


def test_a_resume_hands_the_connection_to_the_held_member() -> None:
    index = LocalIndex()
    index.set_online(True)
    current, inbox = attached(index, "7")
    index.hold(current)
    ticket = index.begin()
    index.receive([everyone(1, "9"), room(2, "9"), direct(3, "4"), everyone(4, "9")])
    back = index.resume(current, "4", "ann", inbox.deliver, ["#dev"], 2)
    assert back is not None
    index.end(ticket)
    index.release(back)
    # 1 reached the fresh session before the resume ran, and 2 Redis kept for Ann; 3 and
    # 4 came after it, and 4, which both were sent, comes once.
    assert ids(inbox) == [1, 3, 4]
    assert index.member("name7") is None
    assert index.member("ann") is back
    index.receive([room(5, "9"), direct(6, "7"), direct(7, "4")])
    assert ids(inbox) == [1, 3, 4, 5, 7]


def test_a_member_that_left_meanwhile_is_not_attached_again() -> None:
    index = LocalIndex()
    index.set_online(True)
    member, inbox = attached(index, "1")
    index.hold(member)
    index.detach(member)
    index.join(member, "#dev", 0)
    index.rename(member, "other")
    assert index.resume(member, "4", "ann", inbox.deliver, ["#dev"], 0) is None
    index.release(member)
    index.receive([room(1, "9"), everyone(2, "9")])
    assert (inbox.lines, index.member("name1"), index.member("other")) == ([], None, None)


def test_a_replay_past_the_ring_says_what_may_be_missing() -> None:
    index = LocalIndex(ring_limit=3)
    index.set_online(True)
    ticket = index.begin()
    index.receive([everyone(eid, "9") for eid in range(1, 7)])
    inbox = Inbox()
    member = index.attach("5", "name5", "5", inbox.deliver, 1)
    index.end(ticket)
    index.release(member)
    assert inbox.lines == [replies.missed_events(2), line(4), line(5), line(6)]


def test_answers_wait_for_the_reader_unless_it_is_not_reading() -> None:
    index = LocalIndex()
    index.set_online(True)
    settled: list[int] = []
    for position in (3, 1, 2):
        index.when_reached(position, partial(settled.append, position))
    index.receive([everyone(1, "9")])
    assert settled == [1]
    index.set_online(False)
    assert settled == [1, 2, 3]
    index.when_reached(9, lambda: settled.append(9))
    assert settled == [1, 2, 3, 9]


def test_answers_for_events_the_stream_lost_are_given_without_them() -> None:
    index = LocalIndex()
    index.set_online(True)
    settled: list[int] = []
    index.when_reached(5, partial(settled.append, 5))
    assert settled == []
    assert index.settle_unreachable() == 1
    assert settled == [5]
    assert index.settle_unreachable() == 0
