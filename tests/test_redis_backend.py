"""What only a cluster has: several Redis backends on one Redis acting as one service.

Most tests open two nodes of a fresh cluster on the module's redis-server, as two
ackchat servers would, and check that they agree: names and slots are cluster-wide and
exact under races, events reach clients on every node once and in order, a session held
on one node resumes on another, a reader whose connection is cut catches up, one that
fell behind a trimmed stream says how much it lost, and a connection costs two round
trips. The last ones run whole servers in cluster mode. A node is kept out of Redis by
connecting it as a Redis user of its own and disabling that user. The contract every
backend keeps is tests/test_backend_contract.py.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
import redis.asyncio
from redis.exceptions import ResponseError

from ackchat.backend.interface import Admitted, BackendUnavailableError
from ackchat.backend.pending import Pending
from ackchat.backend.redis.backend import RedisBackend
from ackchat.backend.redis.commands import library_refused
from ackchat.chat.hub import ChatError
from ackchat.protocol import replies
from ackchat.records import DisconnectReason
from ackchat.registry import client_name
from ackchat.server.assembly import ChatServer
from ackchat.settings import ServerSettings
from backends import OpenNode, RedisLapse, fresh_cluster, redis_backend, redis_url, started_nodes
from lineclient import WAIT, LineClient, bounded, eventually
from redisserver import RedisServer, free_port

T = TypeVar("T")


async def answer(result: Pending[T]) -> T:
    """The value of a backend's answer, once Redis (and the node's reader) gave it."""
    if not result.done:
        settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_: Pending[T]) -> None:
            if not settled.done():
                settled.set_result(None)

        result.add_done_callback(wake)
        await bounded(settled)
    return result.result()


async def refusal(result: Pending[Any]) -> str:
    """The words of the ChatError an answer failed with."""
    with pytest.raises(ChatError) as refused:
        await answer(result)
    return str(refused.value)


async def refusal_now(operation: Callable[..., Pending[Any]], *arguments: Any) -> str:
    """The words of the ChatError ``operation`` is refused with, at once or later."""
    try:
        result = operation(*arguments)
    except ChatError as error:
        return str(error)
    return await refusal(result)


class Inbox:
    """A peer that keeps its event lines and wakes whoever waits for more."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._more = asyncio.Event()

    def deliver(self, data: bytes) -> None:
        self.lines.extend(data.decode().splitlines())
        self._more.set()

    def texts(self, sender: str) -> list[str]:
        """The texts of the messages ``sender`` sent it, in the order they came."""
        found = (re.fullmatch(r"@\d+ \S+ \S+ ([^ :]+): (.*)", line) for line in self.lines)
        return [match[2] for match in found if match is not None and match[1] == sender]

    def ids(self) -> list[int]:
        return [int(line[1:].split(" ", 1)[0]) for line in self.lines if line.startswith("@")]

    async def wait_for_text(self, sender: str, text: str) -> None:
        """Wait until ``sender``'s message ``text`` has come."""
        await self.wait_until(lambda: text in self.texts(sender), f"{sender} said {text!r}")

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for deliveries until ``condition`` holds (within the suite's bound)."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while not condition():
            self._more.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(self._more.wait(), max(remaining, 0))
            except TimeoutError:
                raise AssertionError(f"timed out waiting until {what}: {self.lines[-5:]}") from None


class Client:
    """A client connected to one node, as a test holds it."""

    def __init__(self, node: RedisBackend, admitted: Admitted, inbox: Inbox) -> None:
        self.node = node
        self.name = admitted.record.name
        self.token = admitted.token
        self.record = admitted.record
        self.inbox = inbox


async def connect(node: RedisBackend, name: str | None = None) -> Client:
    inbox = Inbox()
    admitted = await answer(node.admit("127.0.0.1:40000", inbox))
    assert admitted is not None, "the cluster is full"
    client = Client(node, admitted, inbox)
    if name is not None:
        client.name = await answer(node.rename(client.name, name))
    return client


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    return redis_url(redis_server.port)


@pytest.fixture
def cluster() -> str:
    return fresh_cluster()


@pytest.fixture
async def open_node(url: str, cluster: str) -> AsyncIterator[OpenNode]:
    """Start nodes of one fresh cluster; each is closed after the test."""
    async with started_nodes(url, cluster) as open_one:
        yield open_one


@pytest.fixture
async def admin(url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client of the test's Redis, for what the test does behind the nodes' back."""
    client = redis.asyncio.from_url(url)
    yield client
    await client.aclose()


# Names and slots


async def test_names_are_unique_across_nodes_under_concurrent_admits(open_node: OpenNode) -> None:
    a = await open_node("a", max_clients=46)
    b = await open_node("b", max_clients=46)
    arriving = [
        (node, node.admit(f"10.0.0.1:{port}", Inbox())) for port in range(20) for node in (a, b)
    ]
    admitted = [(node, await answer(result)) for node, result in arriving]
    records = [got.record for _, got in admitted if got is not None]
    assert sorted(record.number for record in records) == list(range(1, 41))
    assert all(record.name == client_name(record.number) for record in records)
    assert {(node.node_id, got.record.node) for node, got in admitted if got is not None} == {
        ("a", "a"),
        ("b", "b"),
    }

    # Six clients, three on each node, claim one name in six spellings at once.
    clients = [await connect(node) for node in (a, b, a, b, a, b)]
    variants = ["Ann", "ann", "ANN", "aNn", "AnN", "anN"]
    claims = [
        client.node.rename(client.name, v) for client, v in zip(clients, variants, strict=True)
    ]
    won: list[str] = []
    lost: list[str] = []
    for claim in claims:
        try:
            won.append(await answer(claim))
        except ChatError as error:
            lost.append(str(error))
    # Each node sends its claims to Redis in the order they were made, but which node's
    # first claim Redis runs first is not fixed: one of them wins, spelled as claimed.
    assert won in (["Ann"], ["ann"])
    assert lost == [f"name taken: {variant}" for variant in variants if variant != won[0]]
    for node in (a, b):
        connected = await answer(node.who())
        assert won[0] in [name for name, _ in connected]


async def test_max_clients_is_exact_under_a_race_across_nodes(open_node: OpenNode) -> None:
    a = await open_node("a", max_clients=7)
    b = await open_node("b", max_clients=7)
    arriving = [node.admit(f"10.0.0.2:{port}", Inbox()) for port in range(25) for node in (a, b)]
    admitted = [got for got in [await answer(result) for result in arriving] if got is not None]
    assert len(admitted) == 7
    for node in (a, b):
        status = await answer(node.snapshot(None))
        assert (status.connected, status.seen, status.rejected) == (7, 7, 43)

    # A departure on one node makes room on the other.
    await answer(
        a.depart(
            next(got for got in admitted if got.record.node == "a").record.name,
            DisconnectReason.EXIT,
            False,
        )
    )
    assert await answer(b.admit("10.0.0.3:1", Inbox())) is not None
    assert await answer(a.admit("10.0.0.3:2", Inbox())) is None


async def test_a_node_cap_applies_to_that_node_only(open_node: OpenNode) -> None:
    capped = await open_node("capped", max_clients=10, node_max_clients=2)
    free = await open_node("free", max_clients=10)
    on_capped = [await answer(capped.admit("10.0.0.4:1", Inbox())) for _ in range(4)]
    on_free = [await answer(free.admit("10.0.0.4:2", Inbox())) for _ in range(4)]
    assert [got is not None for got in on_capped] == [True, True, False, False]
    assert all(got is not None for got in on_free)
    status = await answer(free.snapshot(None))
    assert (status.connected, status.rejected) == (6, 2)


async def test_a_limit_set_on_one_node_holds_for_every_node(open_node: OpenNode) -> None:
    a = await open_node("a", max_clients=5)
    # A node started later with another limit joins the cluster's.
    b = await open_node("b", max_clients=50)
    assert b.max_clients == 5
    await answer(a.set_max_clients(1))
    assert await answer(b.admit("10.0.0.5:1", Inbox())) is not None
    assert await answer(b.admit("10.0.0.5:2", Inbox())) is None
    assert b.max_clients == 1


# Delivery across nodes


async def test_room_messages_reach_members_on_both_nodes_once_and_in_order(
    open_node: OpenNode,
) -> None:
    a = await open_node("a", max_clients=10)
    b = await open_node("b", max_clients=10)
    ann = await connect(a, "Ann")
    bob = await connect(b, "Bob")
    listeners = [await connect(a, "Cat"), await connect(b, "Dee"), await connect(b, "Eve")]
    for client in (ann, bob, *listeners):
        await answer(client.node.join(client.name, "hall"))

    # 1,000 messages from Ann on a and 500 from Bob on b, all sent before any answer.
    sent = [a.say("Ann", "hall", f"a{n}") for n in range(1000)]
    sent += [b.say("Bob", "#hall", f"b{n}") for n in range(500)]
    for result in sent:
        await answer(result)

    # A last message, so that anything sent twice would have arrived before it.
    await answer(a.say("Ann", "hall", "end"))
    for client in listeners:
        await client.inbox.wait_for_text("Bob", "b499")
        await client.inbox.wait_for_text("Ann", "end")
        assert client.inbox.texts("Ann") == [*(f"a{n}" for n in range(1000)), "end"]
        assert client.inbox.texts("Bob") == [f"b{n}" for n in range(500)]
        ids = client.inbox.ids()
        assert ids == sorted(set(ids)), "ids increase and none comes twice"
    assert ann.inbox.texts("Ann") == []
    assert len(bob.inbox.texts("Ann")) == 1001
    history = await answer(b.history("Eve", "hall", None, 50))
    assert len(history.events) == 50
    assert history.events[-1].text == "end"
    assert [event.id for event in history.events] == sorted(event.id for event in history.events)


async def test_direct_messages_and_broadcasts_cross_nodes(open_node: OpenNode) -> None:
    a = await open_node("a")
    b = await open_node("b")
    ann = await connect(a, "Ann")
    bob = await connect(b, "Bob")
    cat = await connect(b, "Cat")

    await answer(a.direct("Ann", "BOB", "hi bob"))
    await answer(b.direct("Bob", "ann", "hi ann"))
    assert await answer(b.broadcast("Cat", "hello all")) == 2
    assert await refusal(a.direct("Ann", "ghost", "x")) == "no such client: ghost"

    await ann.inbox.wait_until(lambda: len(ann.inbox.lines) == 2, "Ann has both")
    assert ann.inbox.lines[0].endswith(" direct Bob>Ann: hi ann")
    assert ann.inbox.lines[1].endswith(" all Cat: hello all")
    await bob.inbox.wait_until(lambda: len(bob.inbox.lines) == 2, "Bob has both")
    assert bob.inbox.lines[0].endswith(" direct Ann>Bob: hi bob")
    assert bob.inbox.lines[1].endswith(" all Cat: hello all")
    assert cat.inbox.lines == []
    for node, name in ((a, "Ann"), (b, "Bob")):
        page = await answer(node.history(name, "direct", None, 10))
        assert [event.sender for event in page.events] == ["Ann>Bob", "Bob>Ann"]


async def test_status_who_rooms_and_members_are_cluster_wide(open_node: OpenNode) -> None:
    a = await open_node("a", max_clients=5)
    b = await open_node("b", max_clients=5)
    ann = await connect(a, "Ann")
    await connect(b, "Bob")
    gone = await connect(b)
    await answer(a.join("Ann", "dev"))
    await answer(b.join("Bob", "dev"))
    await answer(b.join("Bob", "ops"))
    await answer(b.depart(gone.name, DisconnectReason.IDLE_TIMEOUT, False))

    for node in (a, b):
        status = await answer(node.snapshot(None))
        assert [(r.name, r.node, r.reason) for r in status.sessions] == [
            ("Ann", "a", None),
            ("Bob", "b", None),
            (gone.name, "b", DisconnectReason.IDLE_TIMEOUT),
        ]
        assert (status.connected, status.seen) == (2, 3)
        assert await answer(node.who()) == [("Ann", ["#dev"]), ("Bob", ["#dev", "#ops"])]
        assert await answer(node.rooms()) == [("#dev", 2), ("#ops", 1)]
        assert await answer(node.members("DEV")) == ("#dev", ["Ann", "Bob"])
    assert ann.inbox.lines[-1].endswith(" #dev *: Bob joined")


async def test_a_session_held_on_one_node_resumes_on_another(open_node: OpenNode) -> None:
    a = await open_node("a", max_clients=5)
    b = await open_node("b", max_clients=5)
    wanderer = await connect(a, "Wanderer")
    friend = await connect(b, "Friend")
    for client, room in ((wanderer, "camp"), (wanderer, "fire"), (friend, "camp")):
        await answer(client.node.join(client.name, room))
    await answer(a.depart("Wanderer", DisconnectReason.RESET, True))
    await friend.inbox.wait_until(
        lambda: friend.inbox.lines[-1].endswith("Wanderer lost the connection"), "the loss"
    )
    await answer(b.say("Friend", "camp", "are you there?"))
    await answer(b.direct("Friend", "wanderer", "call me"))
    assert await answer(b.broadcast("Friend", "anyone?")) == 1
    assert await answer(a.members("camp")) == ("#camp", ["Friend", "Wanderer (away)"])

    returning = await connect(b)
    back = Inbox()
    resumed = await answer(b.resume(wanderer.token, returning.name, back))
    assert (resumed.name, resumed.rooms, resumed.dropped) == ("Wanderer", ["#camp", "#fire"], 0)
    assert [data.decode().split(": ", 1)[1].rstrip("\n") for data in resumed.missed] == [
        "are you there?",
        "call me",
        "anyone?",
    ]
    await friend.inbox.wait_until(
        lambda: friend.inbox.lines[-1].endswith("Wanderer is back"), "the return"
    )
    # It is connected to b now: a does not know it, b delivers to it.
    assert await refusal_now(a.say, "Wanderer", "camp", "from a?") == "no such client: Wanderer"
    await answer(b.say("Wanderer", "camp", "I am back"))
    await friend.inbox.wait_for_text("Wanderer", "I am back")
    await answer(b.say("Friend", "camp", "welcome back"))
    assert back.texts("Friend") == ["welcome back"]
    assert wanderer.inbox.texts("Friend") == []
    status = await answer(a.snapshot(None))
    assert [(r.name, r.node, r.disconnected_at is None) for r in status.sessions] == [
        ("Wanderer", "a", False),
        ("Friend", "b", True),
        ("Wanderer", "b", True),
    ]
    assert await answer(a.who()) == [("Friend", ["#camp"]), ("Wanderer", ["#camp", "#fire"])]


async def test_a_held_session_is_forgotten_once_for_the_cluster(
    open_node: OpenNode, url: str
) -> None:
    lapse = RedisLapse(url)
    a = await open_node("a", resume_grace=lapse.grace)
    b = await open_node("b", resume_grace=lapse.grace)
    await connect(a, "Wanderer")
    friend = await connect(b, "Friend")
    await answer(a.join("Wanderer", "camp"))
    await answer(b.join("Friend", "camp"))
    await answer(a.depart("Wanderer", DisconnectReason.CLOSED_BY_PEER, True))
    assert await answer(b.expire()) == []
    await lapse.past_grace()
    # Both nodes' housekeeping asks at once: one forgets it, the other finds nothing.
    first, second = a.expire(), b.expire()
    assert sorted([*await answer(first), *await answer(second)]) == ["Wanderer"]
    assert friend.inbox.lines[-1].endswith(" #camp *: Wanderer did not come back")
    assert await answer(a.members("camp")) == ("#camp", ["Friend"])


# Faults of the stream


def reader_of(clients: list[dict[str, Any]], cluster: str, node: str) -> int:
    """The id of the CLIENT LIST entry of a node's stream reader."""
    (found,) = [c for c in clients if c["name"] == f"ackchat:{cluster}:{node}:reader"]
    return int(found["id"])


async def test_the_reader_catches_up_after_its_connection_is_cut(
    open_node: OpenNode, admin: redis.asyncio.Redis, cluster: str
) -> None:
    a = await open_node("a")
    b = await open_node("b")
    await connect(a, "Ann")
    bob = await connect(b, "Bob")
    await answer(a.join("Ann", "dev"))
    await answer(b.join("Bob", "dev"))

    cut = reader_of(await admin.client_list(), cluster, "b")
    assert await admin.client_kill_filter(_id=str(cut)) == 1
    sent = [a.say("Ann", "dev", f"m{n}") for n in range(200)]
    for result in sent:
        await answer(result)
    await answer(a.say("Ann", "dev", "end"))
    await bob.inbox.wait_for_text("Ann", "end")
    assert bob.inbox.texts("Ann") == [*(f"m{n}" for n in range(200)), "end"]
    assert b.missed_events == 0
    assert reader_of(await admin.client_list(), cluster, "b") != cut


class NodeUser:
    """A Redis user a node connects as, so that a test can keep that node out of Redis."""

    def __init__(self, admin: redis.asyncio.Redis) -> None:
        self.name, self.password = f"node-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        self._admin = admin

    def url(self, port: int) -> str:
        return f"redis://{self.name}:{self.password}@127.0.0.1:{port}/0"

    async def keep_out(self) -> None:
        """Cut the node's connections, and refuse its new ones."""
        await self._admin.acl_setuser(self.name, enabled=False)
        await self._admin.client_kill_filter(user=self.name)

    async def let_in(self) -> None:
        await self._admin.acl_setuser(self.name, enabled=True)


@asynccontextmanager
async def node_user(admin: redis.asyncio.Redis) -> AsyncIterator[NodeUser]:
    """A user with every right, deleted after the test."""
    user = NodeUser(admin)
    await admin.acl_setuser(
        user.name,
        enabled=True,
        passwords=[f"+{user.password}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    try:
        yield user
    finally:
        await admin.acl_deluser(user.name)


async def test_a_node_behind_a_trimmed_stream_says_how_much_it_lost(
    open_node: OpenNode, admin: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    async with node_user(admin) as user:
        a = await open_node("a", stream_limit=10)
        b = await open_node("b", stream_limit=10, url=user.url(redis_server.port))
        await connect(a, "Ann")
        bob = await connect(b, "Bob")
        await answer(a.join("Ann", "dev"))
        await answer(b.join("Bob", "dev"))

        await user.keep_out()
        sent = [a.say("Ann", "dev", f"m{n}") for n in range(500)]
        for result in sent:
            await answer(result)
        await user.let_in()

        await bob.inbox.wait_for_text("Ann", "m499")
        got = bob.inbox.texts("Ann")
        lost = 500 - len(got)
        assert lost > 0
        assert b.missed_events == lost
        assert got == [f"m{n}" for n in range(lost, 500)]
        assert replies.missed_events(lost).decode().rstrip("\n") in bob.inbox.lines


async def test_scripts_redis_lost_are_loaded_again(
    open_node: OpenNode, admin: redis.asyncio.Redis
) -> None:
    a = await open_node("a")
    ann = await connect(a, "Ann")
    await admin.function_flush()
    # Several operations in flight find the scripts gone; each is carried out once.
    sent = [a.broadcast("Ann", f"m{n}") for n in range(5)]
    assert [await answer(result) for result in sent] == [0] * 5
    bob = await connect(a, "Bob")
    await answer(a.direct("Ann", "Bob", "still here"))
    assert bob.inbox.texts("Ann>Bob") == ["still here"]
    assert ann.inbox.lines == []
    history = await answer(a.history("Bob", "direct", None, 10))
    assert [event.text for event in history.events] == ["still here"]


async def test_a_node_that_loses_redis_says_so_and_recovers(
    admin: redis.asyncio.Redis, redis_server: RedisServer, cluster: str
) -> None:
    async with node_user(admin) as user:
        settings = ServerSettings(
            host="127.0.0.1",
            port=0,
            shutdown_timeout=2.0,
            redis=user.url(redis_server.port),
            cluster_name=cluster,
        )
        server = ChatServer(settings)
        await server.start()
        clients: list[LineClient] = []
        try:
            inside = await LineClient.open(server.port)
            clients.append(inside)
            await inside.greeting()
            assert await inside.ask("/join dev") == "joined #dev: 1 member"
            assert await inside.read_line() == "."

            await user.keep_out()
            assert await inside.ask("/say dev anyone?") == replies.BACKEND_UNAVAILABLE
            # A plain line never asks Redis.
            assert await inside.ask("still acked") == "still acked ACK"
            outside = await LineClient.open(server.port)
            clients.append(outside)
            assert await outside.read_line() == replies.SERVER_UNAVAILABLE
            assert await outside.at_eof()

            await user.let_in()

            # It reconnects after a backoff: until then chat is refused as before.
            async def back() -> bool:
                return await inside.ask("/say dev back") == "/say dev back ACK"

            await eventually(back, "the node is back on Redis")
            again = await LineClient.open(server.port)
            clients.append(again)
            assert (await again.greeting()).startswith("Client")
        finally:
            for client in clients:
                client.close()
            await server.shutdown()


# Costs


async def test_a_connection_costs_two_round_trips(
    open_node: OpenNode, admin: redis.asyncio.Redis
) -> None:
    # A heartbeat an hour long: no beat (a script, a round trip) in the counts below.
    a = await open_node("a", max_clients=100, heartbeat_ttl=3600.0)
    scripts_run = (await admin.info("commandstats")).get("cmdstat_fcall", {}).get("calls", 0)
    before = a.round_trips
    for number in range(20):
        admitted = await answer(a.admit(f"10.0.0.6:{number}", Inbox()))
        assert admitted is not None
        await answer(a.depart(admitted.record.name, DisconnectReason.EXIT, False))
    assert a.round_trips - before == 40
    after = (await admin.info("commandstats"))["cmdstat_fcall"]["calls"]
    assert after - scripts_run == 40

    # Connections arriving together share the round trips.
    before = a.round_trips
    arriving = [a.admit(f"10.0.0.7:{number}", Inbox()) for number in range(50)]
    names = [got.record.name for got in [await answer(r) for r in arriving] if got is not None]
    leaving = [a.depart(name, DisconnectReason.EXIT, False) for name in names]
    for result in leaving:
        await answer(result)
    assert (len(names), a.round_trips - before) == (50, 2)


# Unreachable Redis


async def test_a_redis_that_cannot_be_reached_is_one_sentence() -> None:
    port = free_port()
    backend = redis_backend(f"redis://someone:secret@127.0.0.1:{port}/3")
    with pytest.raises(BackendUnavailableError) as refused:
        await backend.start()
    message = str(refused.value)
    assert re.fullmatch(rf"cannot reach Redis at 127\.0\.0\.1:{port}/3: [^\n]+", message), message
    assert "secret" not in message


async def test_a_redis_that_will_not_load_the_scripts_is_one_sentence(
    admin: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    async with node_user(admin) as user:
        await admin.acl_setuser(user.name, enabled=True, commands=["-function"])
        backend = redis_backend(user.url(redis_server.port))
        with pytest.raises(BackendUnavailableError) as refused:
            await backend.start()
    message = str(refused.value)
    assert message.startswith(
        f"Redis at 127.0.0.1:{redis_server.port}/0 did not load ackchat's scripts: "
    ), message
    assert "FUNCTION" in message.upper()
    assert "\n" not in message


def test_an_old_redis_is_told_apart_from_other_refusals() -> None:
    old = library_refused("redis://x:1/0", ResponseError("unknown command 'FUNCTION'"))
    assert str(old).endswith("scripts: it needs Redis 7.0 or newer (FUNCTION LOAD)")
    other = library_refused("redis://x:1/0", ResponseError("NOPERM no rights."))
    assert str(other) == "Redis at x:1/0 did not load ackchat's scripts: NOPERM no rights"


def test_a_server_that_cannot_reach_its_redis_exits_with_one_line() -> None:
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ackchat",
            "serve",
            "--port",
            "0",
            "--redis",
            f"redis://127.0.0.1:{port}/0",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert f"cannot reach Redis at 127.0.0.1:{port}/0" in line


# Servers in cluster mode


async def test_two_servers_on_one_redis_are_one_service(url: str, cluster: str) -> None:
    settings = ServerSettings(
        host="127.0.0.1", port=0, shutdown_timeout=2.0, redis=url, cluster_name=cluster
    )
    servers = [ChatServer(settings), ChatServer(settings)]
    for server in servers:
        await server.start()
    clients: list[LineClient] = []
    try:
        for server in servers:
            clients.append(await LineClient.open(server.port))
        first, second = clients
        assert [await first.greeting(), await second.greeting()] == ["Client01", "Client02"]
        assert await first.ask("/nick Ann") == "You are now Ann."
        assert await second.ask("/msg ann hello from the other node") == (
            "/msg ann hello from the other node ACK"
        )
        assert (await first.read_line()).endswith(" direct Client02>Ann: hello from the other node")
        status = await second.status()
        assert status[0].startswith("status: 2 of 3 clients connected, 2 seen")
        assert await first.ask("plain line") == "plain line ACK"
    finally:
        for client in clients:
            client.close()
        for server in servers:
            await server.shutdown()


async def test_a_client_gone_before_its_admission_gives_its_slot_back(
    url: str, cluster: str
) -> None:
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        shutdown_timeout=2.0,
        redis=url,
        cluster_name=cluster,
        max_clients=1,
    )
    server = ChatServer(settings)
    await server.start()
    try:
        for _ in range(20):
            (await LineClient.open(server.port)).reset()

        async def nobody_connected() -> bool:
            asked = server.backend.snapshot(None)
            assert isinstance(asked, Pending), "a Redis backend answers later"
            status = await answer(asked)
            return status.connected == 0 and status.seen + status.rejected == 20

        await eventually(nobody_connected, "every slot is given back")
        client = await LineClient.open(server.port)
        assert (await client.greeting()).startswith("Client")
        client.close()
    finally:
        await server.shutdown()
