"""Faults under a cluster, on a real redis-server (docs/CLUSTER.md, "Faults").

The first tests run Redis backends in this process, on the real clock, with a short
heartbeat TTL: a node cut off from Redis past its TTL is reaped as ``node lost`` by the
other and takes its clients back when it returns; a name given away meanwhile closes
the client that had it; a node restarted under its id ends what its earlier process
left; a reader whose connection hangs (a relay, tests/redisproxy.py, stops passing its
bytes) is found deaf and reconnected; while Redis refuses connections every operation
fails at once and the reconnection attempts back off; every list and the stream keep to
their caps and say what they dropped; a Redis that loses its data under connected nodes
(FLUSHALL) gets a new run with their clients in it. The others run nodes as real processes
(tests/nodes.py): a SIGKILLed node's clients are recorded as ``node lost`` by one
survivor; Redis stopped and started again, with its data or without, under a running
cluster; a SIGHUP on one node changes the limit everywhere and every node logs it.

Each test waits for heartbeats in real time, so each runs on one event loop (the
contract suite runs the backend on both).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis.asyncio

from ackchat.backend.interface import Admitted, BackendUnavailableError
from ackchat.backend.pending import Pending
from ackchat.backend.redis import commands
from ackchat.backend.redis.backend import RedisBackend
from ackchat.backend.redis.keys import key_prefix
from ackchat.backend.redis.liveness import FIRST_RETRY
from ackchat.chat.hub import ChatError
from ackchat.protocol import replies
from ackchat.records import DisconnectReason, StatusSnapshot
from ackchat.server.assembly import SystemClock
from backends import OpenNode, fresh_cluster, redis_url, started_nodes
from lineclient import WAIT, LineClient, eventually
from nodes import Nodes
from redisproxy import RedisProxy
from redisserver import RedisServer, redis_binary
from serverprocess import ServerProcess
from test_redis_backend import Inbox, admin, answer, cluster, node_user, url

# The fixtures of test_redis_backend.py used here as well.
__all__ = ["admin", "cluster", "url"]

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

# The heartbeat TTL of the nodes under test (seconds): they beat every 0.2 s.
TTL = 0.6
# Polls of a condition, this many seconds apart, within the suite's bound.
POLL = 0.02


async def until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``probe`` every :data:`POLL` seconds until it holds, within the suite's bound."""
    await eventually(probe, what, POLL)


class Session(Inbox):
    """A peer the backend may close, as a server's session: it keeps the farewell."""

    def __init__(self) -> None:
        super().__init__()
        self.farewell: bytes | None = None
        self.evicted = asyncio.Event()

    def evict(self, farewell: bytes) -> None:
        self.farewell = farewell
        self.evicted.set()


async def join(node: RedisBackend, peer: Inbox, name: str, *rooms: str) -> Admitted:
    """A client of ``node`` with ``peer`` as its connection, renamed ``name``, in ``rooms``."""
    admitted = await answer(node.admit("127.0.0.1:40000", peer))
    assert admitted is not None, "the cluster is full"
    assert await answer(node.rename(admitted.record.name, name)) == name
    for room in rooms:
        await answer(node.join(name, room))
    return admitted


def records(status: StatusSnapshot) -> list[tuple[str, str, DisconnectReason | None]]:
    return [(record.name, record.node, record.reason) for record in status.sessions]


@pytest.fixture
async def open_node(url: str, cluster: str) -> AsyncIterator[OpenNode]:
    """Start nodes of one fresh cluster on the real clock, with the short TTL; each is
    closed after the test."""
    async with started_nodes(
        url, cluster, SystemClock(), heartbeat_ttl=TTL, max_clients=10
    ) as open_one:
        yield open_one


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[RedisProxy]:
    relay = RedisProxy(redis_server.port)
    await relay.start()
    yield relay
    await relay.close()


# Node loss, in this process


async def test_a_node_cut_off_past_its_ttl_is_reaped_and_takes_its_clients_back(
    open_node: OpenNode, admin: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    async with node_user(admin) as user:
        a = await open_node("a")
        b = await open_node("b", url=user.url(redis_server.port))
        friend, wanderer = Inbox(), Inbox()
        await join(a, friend, "Friend", "camp")
        await join(b, wanderer, "Wanderer", "camp")

        await user.keep_out()
        began = time.monotonic()
        await friend.wait_until(
            lambda: friend.lines[-1].endswith("#camp *: Wanderer lost the connection"), "reaped"
        )
        # Its heartbeat expired a TTL after its last beat; a reaps at its next beat.
        assert time.monotonic() - began < TTL * 2 + 1.0
        status = await answer(a.snapshot(None))
        assert records(status) == [
            ("Friend", "a", None),
            ("Wanderer", "b", DisconnectReason.NODE_LOST),
        ]
        assert status.connected == 1

        await user.let_in()
        await friend.wait_until(
            lambda: friend.lines[-1].endswith("#camp *: Wanderer is back"), "taken back"
        )
        status = await answer(a.snapshot(None))
        assert records(status) == [
            ("Friend", "a", None),
            ("Wanderer", "b", DisconnectReason.NODE_LOST),
            ("Wanderer", "b", None),
        ]
        assert status.connected == 2
        await answer(b.say("Wanderer", "camp", "still here"))
        await friend.wait_for_text("Wanderer", "still here")
        await answer(a.say("Friend", "camp", "welcome back"))
        await wanderer.wait_for_text("Friend", "welcome back")


async def test_a_name_given_away_while_its_node_was_cut_off_closes_its_client(
    open_node: OpenNode, admin: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    async with node_user(admin) as user:
        a = await open_node("a", resume_grace=0.3)
        b = await open_node("b", resume_grace=0.3, url=user.url(redis_server.port))
        first = Session()
        await join(b, first, "Ann")
        await user.keep_out()

        async def forgotten() -> bool:
            # Reaped (held for the grace), then forgotten when the grace is over.
            return "Ann" in await answer(a.expire())

        await until(forgotten, "Ann was reaped and her grace ran out")
        second = Inbox()
        await join(a, second, "Ann")

        await user.let_in()
        await asyncio.wait_for(first.evicted.wait(), WAIT)
        assert first.farewell == replies.line(replies.NAME_TAKEN)
        assert await answer(b.who()) == [("Ann", [])]
        status = await answer(b.snapshot(None))
        assert [(r.name, r.node) for r in status.sessions if r.reason is None] == [("Ann", "a")]
        # The closed client is not b's any more: b has no client called Ann.
        with pytest.raises(ChatError, match="no such client: Ann"):
            b.rename("Ann", "Other")


async def test_a_node_restarted_under_its_id_ends_what_its_earlier_process_left(
    open_node: OpenNode,
) -> None:
    earlier = await open_node("x")
    for name in ("Ann", "Bob"):
        await join(earlier, Inbox(), name)
    # The process is gone without a word about its clients.
    await earlier.close()
    again = await open_node("x")
    status = await answer(again.snapshot(None))
    assert records(status) == [
        ("Ann", "x", DisconnectReason.NODE_LOST),
        ("Bob", "x", DisconnectReason.NODE_LOST),
    ]
    assert status.connected == 0


# The reader, and the command connection


async def test_a_reader_whose_connection_hangs_is_found_deaf_and_reconnected(
    open_node: OpenNode, proxy: RedisProxy, caplog: pytest.LogCaptureFixture
) -> None:
    a = await open_node("a")
    b = await open_node("b", url=proxy.url())
    ann, bob = Inbox(), Inbox()
    await join(a, ann, "Ann", "dev")
    await join(b, bob, "Bob", "dev")

    assert proxy.hang(b":reader") == 1
    began = time.monotonic()
    await answer(a.say("Ann", "dev", "can you hear me?"))
    with caplog.at_level(logging.INFO, "ackchat.server"):
        await bob.wait_for_text("Ann", "can you hear me?")
    # Found by its heartbeat within about a TTL, not by the socket's timeout (7 s).
    assert time.monotonic() - began < TTL * 2 + 2.0
    logged = [record.getMessage() for record in caplog.records]
    assert any(text.startswith("event stream reader is deaf") for text in logged), logged
    assert not any("lost Redis" in text for text in logged), logged
    await answer(a.say("Ann", "dev", "and now?"))
    await bob.wait_for_text("Ann", "and now?")
    assert bob.texts("Ann") == ["can you hear me?", "and now?"]


async def test_a_command_connection_that_hangs_times_out_and_reconnects(
    open_node: OpenNode, proxy: RedisProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "REPLY_TIMEOUT", 0.5)
    node = await open_node("a", url=proxy.url())
    await join(node, Inbox(), "Ann")
    assert proxy.hang(b":commands") == 1
    began = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=r"no reply within 0\.5 seconds"):
        await answer(node.who())
    assert time.monotonic() - began < 0.5 + 1.0

    await back_on_redis(node, "the node is back on Redis over a new connection")
    counts = node.links
    assert (counts.command_faults["timeout"], counts.command_reconnects) == (1, 1)


async def test_while_redis_refuses_operations_fail_at_once_and_attempts_back_off(
    open_node: OpenNode, proxy: RedisProxy
) -> None:
    node = await open_node("a", url=proxy.url())
    await join(node, Inbox(), "Ann")
    proxy.refuse()

    async def refused_at_once() -> bool:
        return refused(node.who())

    await until(refused_at_once, "the node noticed that Redis is gone")

    async def attempts_made() -> bool:
        # Operations all the while: each is refused at once, and none makes an attempt.
        assert refused(node.admit("127.0.0.1:1", Inbox()))
        return len(proxy.attempts(b":commands")) >= 6

    await until(attempts_made, "six reconnection attempts")
    gaps = [later - earlier for earlier, later in pairwise(proxy.attempts(b":commands"))]
    # Doubling from 0.05 s, each between half and all of its step, up to a third of the TTL.
    steps = [min(FIRST_RETRY * 2 ** (n + 1), TTL / 3) for n in range(len(gaps))]
    for gap, step in zip(gaps, steps, strict=True):
        assert step / 2 - 0.01 <= gap <= step + 0.15, (gaps, steps)

    proxy.let_in()

    await back_on_redis(node, "the node is back on Redis")


async def back_on_redis(node: RedisBackend, what: str) -> None:
    """Wait (bounded) until ``node`` answers again, with Ann as its one client."""

    async def back() -> bool:
        try:
            return await answer(node.who()) == [("Ann", [])]
        except BackendUnavailableError:
            return False

    await until(back, what)


def refused(result: Pending[Any]) -> bool:
    """Whether ``result`` was settled at once, as unavailable."""
    if not result.done:
        return False
    try:
        result.result()
    except BackendUnavailableError:
        return True
    return False


# Bounds


async def test_every_list_and_the_stream_keep_to_their_caps_and_say_what_they_dropped(
    open_node: OpenNode, admin: redis.asyncio.Redis, cluster: str
) -> None:
    caps = {"history_limit": 3, "room_history": 3, "direct_history": 3, "resume_buffer": 3}
    node = await open_node("a", stream_limit=10, **caps)
    stay, away = Inbox(), Inbox()
    await join(node, stay, "Stay", "dev")
    held = await join(node, away, "Away", "dev")
    for _ in range(5):
        admitted = await answer(node.admit("127.0.0.1:2", Inbox()))
        assert admitted is not None
        await answer(node.depart(admitted.record.name, DisconnectReason.EXIT, False))
    await answer(node.depart("Away", DisconnectReason.RESET, True))
    for number in range(300):
        await answer(node.say("Stay", "dev", f"r{number}"))
        await answer(node.direct("Stay", "Away", f"d{number}"))

    prefix = key_prefix(cluster)
    lengths = {
        "departed": await admin.llen(prefix + "departed"),
        "room history": await admin.llen(prefix + "r:#dev:history"),
        "direct history": await admin.llen(prefix + "m:1:direct"),
        "missed while held": await admin.llen(prefix + f"m:{held.record.number}:missed"),
    }
    assert lengths == {
        "departed": 3,
        "room history": 3,
        "direct history": 3,
        "missed while held": 3,
    }
    # Redis trims the stream in whole blocks (100 entries): a bound, not an exact cap.
    assert await admin.xlen(prefix + "events") <= 10 + 100
    status = await answer(node.snapshot(None))
    assert status.dropped == 3
    returning = await answer(node.admit("127.0.0.1:3", Inbox()))
    assert returning is not None
    resumed = await answer(node.resume(held.token, returning.record.name, Inbox()))
    # 300 room and 300 direct messages were kept for Away, in a buffer of 3.
    assert resumed.dropped == 600 - 3


# Lost data


async def test_a_redis_that_loses_its_data_under_connected_nodes_starts_a_new_run(
    open_node: OpenNode, admin: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    a = await open_node("a")
    b = await open_node("b")
    ann, bob = Inbox(), Inbox()
    await join(a, ann, "Ann", "dev")
    await join(b, bob, "Bob", "dev")
    for number in range(30):
        await answer(a.say("Ann", "dev", f"before {number}"))
    await bob.wait_for_text("Ann", "before 29")

    # Its data is gone, its connections stay: the nodes find out from their next beat.
    with caplog.at_level(logging.WARNING, "ackchat.server"):
        await admin.flushall()

        async def both_back() -> bool:
            try:
                status = await answer(a.snapshot(None))
            except BackendUnavailableError:
                return False
            return [(r.name, r.reason) for r in status.sessions] == [
                ("Ann", None),
                ("Bob", None),
            ]

        await until(both_back, "both clients are registered in the new run")
    logged = [record.getMessage() for record in caplog.records]
    assert sum("a new run of the cluster began" in text for text in logged) == 2, logged
    # The stream starts again from id 1: the readers read it from its start.
    await answer(b.say("Bob", "dev", "after"))
    await ann.wait_for_text("Bob", "after")
    await answer(a.direct("Ann", "bob", "still you?"))
    await bob.wait_until(lambda: bob.lines[-1].endswith("direct Ann>Bob: still you?"), "direct")
    assert await answer(b.members("dev")) == ("#dev", ["Ann", "Bob"])
    assert b.missed_events == 0


# Faults under nodes that are real processes

# The heartbeat TTL of node processes (seconds): short, with room for a busy machine.
NODE_TTL = 1.5
# Failed reconnection attempts that outlast NODE_TTL: each waits at least half its step
# (0.025 s, 0.05, 0.1, 0.2, then 0.25 as a third of the TTL caps the steps at 0.5 s).
ATTEMPTS_PAST_TTL = 9
# Beats of a node after which it has been connected for a TTL (it beats thrice a TTL)
# and may reap: by then any wrong reaping would have happened.
BEATS_PAST_TTL = 5


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and start again."""
    server = RedisServer.start(redis_binary())
    try:
        yield server
    finally:
        server.stop()


class Greeted(NamedTuple):
    """A client a node greeted: its connection, name and resume token."""

    client: LineClient
    name: str
    token: str


class Clients:
    """Line clients a test opened, each closed after the test."""

    def __init__(self) -> None:
        self.opened: list[LineClient] = []

    async def open(self, node: ServerProcess) -> LineClient:
        client = await LineClient.open(node.port)
        self.opened.append(client)
        return client

    async def greeted(self, node: ServerProcess, nick: str = "", *rooms: str) -> Greeted:
        """A client greeted by ``node``, renamed ``nick`` if given, in ``rooms``."""
        client = await self.open(node)
        block = await client.read_block()
        named = re.fullmatch(r"Welcome! You are (\S+)\.", block[0])
        assert named is not None, block
        name, token = named[1], block[-1].removeprefix(replies.RESUME_PREFIX)
        if nick:
            assert await client.ask(f"/nick {nick}") == f"You are now {nick}."
            name = nick
        for room in rooms:
            await client.send(f"/join {room}")
            assert (await client.reply()).startswith(f"joined #{room}: ")
            await client.read_block()
        return Greeted(client, name, token)


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    opened = Clients()
    yield opened
    for client in opened.opened:
        client.close()


async def start_cluster(
    nodes: Nodes, url: str, count: int, *options: str
) -> tuple[str, list[ServerProcess]]:
    """``count`` nodes of a fresh cluster on ``url``, beating every third of NODE_TTL;
    the cluster's name and the nodes."""
    cluster = fresh_cluster()
    started = await nodes.start(
        count,
        *("--redis", url, "--cluster-name", cluster),
        *("--heartbeat-ttl", str(NODE_TTL)),
        *options,
    )
    return cluster, started


def node_of(node: ServerProcess) -> str:
    """The name a node gives itself in its cluster when not told one."""
    return f"127.0.0.1:{node.port}"


async def status(client: LineClient) -> list[str]:
    """The ``status`` block, past the events that come before it."""
    await client.send("status")
    return await client.reply_block()


async def event_ending(client: LineClient, text: str) -> str:
    """The next event line that ends with ``text`` (the ones before it are skipped)."""
    while not (line := await client.read_line()).endswith(text):
        assert line.startswith("@"), line
    return line


def connected_names(block: list[str]) -> list[str]:
    return [line.split(" ", 1)[0] for line in block[1:] if " still connected" in line]


async def test_a_killed_nodes_clients_are_recorded_as_node_lost_by_one_survivor(
    nodes: Nodes, redis_server: RedisServer, clients: Clients
) -> None:
    _, (first, second, third) = await start_cluster(
        nodes, redis_url(redis_server.port), 3, "--max-clients", "4"
    )
    ann = await clients.greeted(first, "Ann", "camp")
    await clients.greeted(second, "Bob")
    cat = await clients.greeted(third, "Cat", "camp")
    await clients.greeted(third)
    full = await clients.open(first)
    assert await full.read_line() == replies.SERVER_FULL

    third.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    pattern = (
        rf"node {re.escape(node_of(third))} lost \(its heartbeat expired\): node (\S+)"
        r" recorded its 2 clients as node lost"
    )
    reapers = {(await survivor.wait_for_log(pattern))[1] for survivor in (first, second)}
    # Within the TTL and a few seconds, by one of them, and both know it.
    assert time.monotonic() - killed < NODE_TTL + 3.0
    assert len(reapers) == 1, reapers
    assert reapers <= {node_of(first), node_of(second)}, reapers
    await event_ending(ann.client, " #camp *: Cat lost the connection")

    block = await status(ann.client)
    assert block[0].startswith("status: 2 of 4 clients connected, 4 seen")
    lost = [line.split(" ", 1)[0] for line in block[1:] if " (node lost)" in line]
    assert lost == ["Cat", "Client04"]
    assert connected_names(block) == ["Ann", "Bob"]
    # Their slots are free, and a client that lost its node resumes on another.
    back = await clients.greeted(second)
    await back.client.send(f"/resume {cat.token}")
    assert (await back.client.reply()).startswith("Resumed: you are Cat again in #camp")


async def beats_after(
    admin: redis.asyncio.Redis, stream: str, after: bytes, nodes: list[str], count: int
) -> list[bytes]:
    """Read the cluster's stream after entry ``after`` until each of ``nodes`` beat
    ``count`` times; the notices of other kinds seen meanwhile."""
    beats = dict.fromkeys(nodes, 0)
    others: list[bytes] = []
    deadline = time.monotonic() + WAIT
    while min(beats.values()) < count:
        assert time.monotonic() < deadline, f"not enough beats: {beats}"
        reply: Any = await admin.xread({stream: after}, block=1000)
        for _, entries in reply:
            for entry_id, fields in entries:
                after = entry_id
                header = fields[b"h"].decode().split(" ")
                if header[0] == "n" and header[2] == "beat" and header[1] in beats:
                    beats[header[1]] += 1
                elif header[0] == "n":
                    others.append(fields[b"h"])
    return others


async def test_a_cluster_rides_out_redis_stopped_and_started_again_with_its_data(
    nodes: Nodes, own_redis: RedisServer, clients: Clients
) -> None:
    url = redis_url(own_redis.port)
    cluster, started = await start_cluster(nodes, url, 3, "--log-level", "debug")
    ann = await clients.greeted(started[0], "Ann", "dev")
    bob = await clients.greeted(started[1], "Bob", "dev")
    await clients.greeted(started[2], "Cat")
    before = await status(ann.client)
    assert connected_names(before) == ["Ann", "Bob", "Cat"]

    own_redis.shut_down(save=True)
    for node in started:
        await node.wait_for_log(r"WARNING ackchat\.server: cannot reach Redis .*; reconnecting")
    # Connected clients keep their ACKs, status shows the last view, and what needs the
    # cluster is refused in one line; a new connection is told to come back later.
    assert await ann.client.ask("still there?") == "still there? ACK"
    during = await status(ann.client)
    assert during[0].endswith(": the shared state cannot be reached now"), during[0]
    assert during[1:] == before[1:]
    await ann.client.send("/msg bob are you there?")
    assert await ann.client.reply() == replies.BACKEND_UNAVAILABLE
    newcomer = await clients.open(started[1])
    assert await newcomer.read_line() == replies.SERVER_UNAVAILABLE
    assert await newcomer.at_eof()
    # Redis stays down until the heartbeats it saved have expired: every node has failed
    # that many attempts, each waiting at least half its step.
    for node in started:
        for _ in range(ATTEMPTS_PAST_TTL):
            await node.wait_for_log(r"DEBUG ackchat\.server: cannot reach Redis")

    own_redis.start_again()
    for node in started:
        await node.wait_for_log(
            r"INFO ackchat\.server: this node's clients registered with the cluster again:"
            r" 1 as they were$"
        )
        await node.wait_for_log(r"reconnected to Redis at .* after [\d.]+ seconds")
    # Nobody reaps anybody: each node has beaten for a TTL since it came back, and
    # the stream carries no notice but beats.
    admin = redis.asyncio.from_url(url)
    try:
        stream = key_prefix(cluster) + "events"
        last: Any = await admin.xrevrange(stream, count=1)
        ids = [node_of(node) for node in started]
        assert await beats_after(admin, stream, last[0][0], ids, BEATS_PAST_TTL) == []
    finally:
        await admin.aclose()
    after = await status(bob.client)
    assert connected_names(after) == ["Ann", "Bob", "Cat"]
    assert not any("(node lost)" in line for line in after)

    assert await ask(ann.client, "/msg bob back again") == "/msg bob back again ACK"
    await event_ending(bob.client, " direct Ann>Bob: back again")
    assert await ask(bob.client, "/say dev and the room") == "/say dev and the room ACK"
    await event_ending(ann.client, " #dev Bob: and the room")


async def test_a_redis_restarted_empty_starts_a_new_run_with_the_live_clients_in_it(
    nodes: Nodes, own_redis: RedisServer, clients: Clients
) -> None:
    _, (first, second) = await start_cluster(nodes, redis_url(own_redis.port), 2)
    ann = await clients.greeted(first, "Ann", "dev")
    other = await clients.greeted(second, "", "dev")

    own_redis.shut_down(save=False)
    own_redis.start_again()
    for node in (first, second):
        await node.wait_for_log(
            r"a new run of the cluster began \(Redis lost its data\); this node's clients"
            r" registered with the cluster again: 1 registered anew"
        )
    block = await status(other.client)
    assert block[0].startswith("status: 2 of 3 clients connected, 2 seen")
    assert connected_names(block) == ["Ann", other.name]
    # New clients get names no live client has (the new run let those register first).
    newcomer = await greeted_when_admitted(clients, second)
    assert newcomer.name not in {"Ann", other.name, "Client01"}
    # The readers read the new run's stream from its start.
    assert await ask(ann.client, "/say dev a new run") == "/say dev a new run ACK"
    await event_ending(other.client, " #dev Ann: a new run")
    assert await ask(other.client, "/msg ann hello") == "/msg ann hello ACK"
    await event_ending(ann.client, f" direct {other.name}>Ann: hello")


async def test_a_limit_changed_by_sighup_on_one_node_changes_and_is_logged_everywhere(
    nodes: Nodes, redis_server: RedisServer, clients: Clients, tmp_path: Path
) -> None:
    options = (
        *("--redis", redis_url(redis_server.port), "--cluster-name", fresh_cluster()),
        *("--heartbeat-ttl", str(NODE_TTL)),
    )
    configs = [tmp_path / f"node{number}.toml" for number in range(3)]
    for config in configs:
        config.write_text("[serve]\nmax_clients = 3\n")
    started = await nodes.start_each(*(("--config", str(config), *options) for config in configs))
    configs[0].write_text("[serve]\nmax_clients = 4\n")
    started[0].send_signal(signal.SIGHUP)
    await started[0].wait_for_log(r"reload of .*node0\.toml: max_clients 3 -> 4")
    for node in started:
        await node.wait_for_log(
            rf"max_clients 3 -> 4 \(set on node {re.escape(node_of(started[0]))}\)"
        )
    watcher = await clients.greeted(started[2])
    assert (await status(watcher.client))[0].startswith("status: 1 of 4 clients connected")


async def ask(client: LineClient, text: str) -> str:
    """Send ``text`` and return its reply, past the events that come first."""
    await client.send(text)
    return await client.reply()


async def greeted_when_admitted(clients: Clients, node: ServerProcess) -> Greeted:
    """A client greeted by ``node``, trying again while it is told to come back later."""
    deadline = time.monotonic() + WAIT
    while True:
        client = await clients.open(node)
        first = await client.read_line()
        if first != replies.SERVER_UNAVAILABLE:
            block = [first, *await client.read_block()]
            named = re.fullmatch(r"Welcome! You are (\S+)\.", block[0])
            assert named is not None, block
            return Greeted(client, named[1], block[-1].removeprefix(replies.RESUME_PREFIX))
        assert time.monotonic() < deadline, "never admitted"
        await asyncio.sleep(POLL)
