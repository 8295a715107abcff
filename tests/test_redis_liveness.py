"""A cluster node's liveness, without Redis: its heartbeat's timing on a clock the test
moves, the reconnection delays, the local index starting over on a new run and passing
notices on, what ``status`` says of an earlier view, and the settings behind them."""

from __future__ import annotations

from itertools import islice

import pytest

from ackchat.backend.redis.codec import NOTICE, ROOM, Entry
from ackchat.backend.redis.liveness import FIRST_RETRY, LAST_RETRY, Liveness, reconnect_delays
from ackchat.backend.redis.local import LocalIndex, Registration
from ackchat.protocol import replies
from ackchat.records import StatusSnapshot
from ackchat.server.assembly import node_id
from ackchat.settings import ServerSettings, SettingsError, resolve

# The heartbeat


def test_a_node_beats_three_times_per_ttl_and_reaps_only_after_a_ttl_connected() -> None:
    liveness = Liveness(6.0)
    assert liveness.interval == 2.0
    assert not liveness.may_reap(100.0)
    liveness.connected(100.0)
    assert not liveness.may_reap(105.9)
    assert liveness.may_reap(106.0)
    # Back from an outage, it waits a TTL again: the others may not be back yet.
    liveness.disconnected()
    assert not liveness.may_reap(200.0)
    liveness.connected(200.0)
    assert not liveness.may_reap(205.0)
    assert liveness.may_reap(206.5)


def test_a_reader_that_has_not_heard_a_beat_for_a_ttl_is_deaf() -> None:
    liveness = Liveness(3.0)
    liveness.connected(0.0)
    assert not liveness.deaf(applied=0, now=50.0)  # no beat sent yet: nothing to miss
    liveness.beat_sent(10, now=1.0)
    liveness.beat_sent(12, now=2.0)  # the oldest unheard beat stays the probe
    assert not liveness.deaf(applied=9, now=3.9)
    assert liveness.deaf(applied=9, now=4.0)
    # Heard (the reader passed its id): the next beat is the next probe.
    assert not liveness.deaf(applied=10, now=4.0)
    assert not liveness.deaf(applied=10, now=100.0)
    liveness.beat_sent(14, now=5.0)
    assert liveness.deaf(applied=13, now=8.0)
    liveness.reader_restarted()
    assert not liveness.deaf(applied=13, now=20.0)


def test_a_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Liveness(0.0)


def test_reconnection_delays_double_with_jitter_and_stay_under_a_third_of_the_ttl() -> None:
    delays = list(islice(reconnect_delays(60.0), 12))
    steps = [min(FIRST_RETRY * 2**n, LAST_RETRY) for n in range(12)]
    for delay, step in zip(delays, steps, strict=True):
        assert step / 2 <= delay <= step
    assert len(set(delays)) > 1
    # A short TTL caps them lower, so that a node is back before anyone would reap it.
    assert max(islice(reconnect_delays(0.6), 20)) <= 0.2


# The local index: notices and new runs


class Inbox:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def deliver(self, data: bytes) -> None:
        self.lines.append(data)


def event(eid: int, kind: str = ROOM, who: str = "9", room: str = "#dev") -> Entry:
    return Entry(eid, kind, who, room, f"@{eid} t {room} x: m\n".encode())


def test_notices_go_to_the_handler_in_order_and_never_to_a_client() -> None:
    index = LocalIndex()
    index.set_online(True)
    heard: list[tuple[str, str, bytes]] = []
    index.on_notice = lambda entry: heard.append((entry.who, entry.room, entry.data))
    inbox = Inbox()
    # A node may be called like a member id: a notice about it is still not a message.
    member = index.attach("7", "ann", "7", inbox.deliver, 0)
    index.release(member)
    ticket = index.begin()
    index.receive([Entry(1, NOTICE, "7", "beat", b""), Entry(2, NOTICE, "a", "lost", b"b 2")])
    assert heard == [("7", "beat", b""), ("a", "lost", b"b 2")]
    # Replayed to a member whose admission the reader overtook: no notice reaches it.
    late = index.attach("7", "ann", "7", inbox.deliver, 0)
    index.end(ticket)
    index.release(late)
    assert inbox.lines == []


def test_a_new_run_starts_the_index_over_once() -> None:
    index = LocalIndex()
    index.set_online(True)
    index.run = "old"
    inbox = Inbox()
    member = index.attach("3", "ann", "3", inbox.deliver, 0)
    index.release(member)
    index.hold(member)
    index.join(member, "#dev", 0)
    index.release(member)
    index.receive([event(n) for n in range(1, 41)])
    settled: list[str] = []
    index.when_reached(45, lambda: settled.append("answered"))

    assert not index.observe_run("old")
    # Redis lost its data: nothing is there yet. The index starts over, and gives the
    # answers that waited for the old stream.
    assert index.observe_run(None)
    assert (index.applied, settled) == (0, ["answered"])
    assert not index.observe_run(None)
    # The run made meanwhile is the one already read from its start: no second start.
    index.receive([event(1), event(2)])
    assert not index.observe_run("new")
    assert index.applied == 2
    assert len(inbox.lines) == 42
    assert index.missed == 0

    # Another loss, seen straight as another run.
    assert index.observe_run("newer")
    index.receive([event(1)])
    assert (index.applied, len(inbox.lines)) == (1, 43)


def test_a_member_registered_again_under_new_numbers_gets_what_is_sent_to_them() -> None:
    index = LocalIndex()
    index.set_online(True)
    inbox = Inbox()
    member = index.attach("3", "ann", "3", inbox.deliver, 0)
    index.release(member)
    index.renumber(member, "8", "9")
    assert (member.mid, member.session, index.member("ann")) == ("8", "9", member)
    index.receive([Entry(1, "d", "8", "", b"for 8\n"), Entry(2, "d", "3", "", b"for 3\n")])
    assert inbox.lines == [b"for 8\n"]


def test_a_registration_keeps_the_names_a_session_had() -> None:
    registration = Registration("Client03", "t0k3n", "127.0.0.1:9", 1.5, (), Inbox().deliver)
    renamed = registration.renamed("Ann").renamed("Bee")
    assert (renamed.name, renamed.earlier_names) == ("Bee", ("Client03", "Ann"))
    assert renamed.token == "t0k3n"


# What status says of an earlier view


def test_status_from_an_earlier_view_says_when_it_was_taken() -> None:
    view = StatusSnapshot([], connected=0, max_clients=3, seen=4, rejected=0, dropped=0, hidden=0)
    header = next(replies.status_lines(view, as_of=1_700_000_000))
    taken = replies.format_time(1_700_000_000)
    assert header == (
        "status: 0 of 3 clients connected, 4 seen, 0 rejected (server full), 0 dropped from"
        f" the cache; as of {taken}: the shared state cannot be reached now"
    )
    assert "as of" not in next(replies.status_lines(view))


# Settings


def test_the_heartbeat_ttl_is_a_positive_number_of_seconds() -> None:
    assert ServerSettings().heartbeat_ttl == 5.0
    assert resolve(ServerSettings, {"heartbeat_ttl": "0.5"}, {}, None).heartbeat_ttl == 0.5
    assert resolve(ServerSettings, {}, {"ACKCHAT_HEARTBEAT_TTL": "2"}, None).heartbeat_ttl == 2.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SettingsError, match="--heartbeat-ttl must be a number above 0"):
            resolve(ServerSettings, {"heartbeat_ttl": bad}, {}, None)


def test_nodes_sharing_a_port_are_told_apart() -> None:
    first, second = (
        node_id(ServerSettings(host="127.0.0.1", port=1234, reuse_port=True)) for _ in range(2)
    )
    assert first.startswith("127.0.0.1:1234-")
    assert first != second
