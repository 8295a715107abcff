"""Three ``ackchat serve`` processes in cluster mode, as one service, with netcat-style
line clients on different nodes.

Every test starts its own nodes (tests/nodes.py) on a fresh cluster name, so that tests
sharing a Redis never meet: names are unique and admission exact under concurrent
connects to every node, direct, ``/all`` and room messages cross nodes in order with
none lost or repeated, ``who``, ``/rooms``, ``/members``, ``/history`` and ``status``
(with the node of each client) are the cluster's from any node, nodes stop at once
after their clients left, a session lost or drained on one node resumes on another, and
HAProxy, configured as docs/CLUSTER.md says, spreads clients over nodes that chat with
each other. The names, admission and chat tests run on a single redis-server and on a
Redis Cluster of three masters (tests/rediscluster.py), with the nodes pointed at the
master that owns the cluster's hash slot; the last test points them at the others,
which redirect them to it (tests/test_redis_moved.py moves the slot under running nodes).
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

import pytest

from ackchat.protocol import replies
from ackchat.registry import client_name
from backends import fresh_cluster, redis_url
from conftest import ProxyFactory
from lineclient import LineClient, eventually
from nodes import Nodes
from rediscluster import RedisCluster
from redisserver import RedisServer
from serverprocess import ServerProcess

# Each node is a process of its own: a second event loop in the tests adds nothing.
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

# The Redis URL a node of the named ackchat cluster is given.
UrlFor = Callable[[str], str]

NODES = 3
NOTICE = "Server draining: please reconnect."
# ``@<id> <time> <scope> <from>: <text>`` (docs/PROTOCOL.md, "Event lines").
EVENT = re.compile(r"@(\d+) \S+ (\S+) ([^ :]+): (.*)")


@pytest.fixture(scope="module", params=["redis", "redis-cluster"])
def redis_target(request: pytest.FixtureRequest) -> UrlFor:
    """Where the cluster keeps its state: one redis-server, or a Redis Cluster (each
    started once for the module)."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return lambda _: redis_url(server.port)
    redis_cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return redis_cluster.url_for


@pytest.fixture
def one_redis(redis_server: RedisServer) -> UrlFor:
    """The module's single redis-server, for the tests that do not run on both."""
    return lambda _: redis_url(redis_server.port)


async def start_cluster(
    nodes: Nodes, url_for: UrlFor, *options: str, count: int = NODES
) -> list[ServerProcess]:
    """``count`` nodes of a fresh cluster with ``options``; each is named ``HOST:PORT``."""
    name = fresh_cluster()
    return await nodes.start(count, "--redis", url_for(name), "--cluster-name", name, *options)


def node_id(node: ServerProcess) -> str:
    """The name a node gives itself in its cluster when not told one."""
    return f"127.0.0.1:{node.port}"


class Greeted(NamedTuple):
    """A client that was greeted: its connection, name and resume token."""

    client: LineClient
    name: str
    token: str


async def greeting(client: LineClient) -> Greeted:
    """Read the greeting block: the name it gives and the resume token."""
    block = await client.read_block()
    named = re.fullmatch(r"Welcome! You are (\S+)\.", block[0])
    assert named is not None, block
    assert block[-1].startswith("Resume token: "), block
    return Greeted(client, named[1], block[-1].removeprefix("Resume token: "))


class Clients:
    """Line clients a test opened, each closed after the test."""

    def __init__(self) -> None:
        self.opened: list[LineClient] = []

    async def open(self, port: int) -> LineClient:
        client = await LineClient.open(port)
        self.opened.append(client)
        return client

    async def greeted(self, node: ServerProcess, nick: str = "") -> Greeted:
        """A client greeted by ``node``, renamed ``nick`` if given."""
        greeted = await greeting(await self.open(node.port))
        if not nick:
            return greeted
        assert await ask(greeted.client, f"/nick {nick}") == f"You are now {nick}."
        return greeted._replace(name=nick)


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Open line clients to nodes; every one is closed after the test."""
    opened = Clients()
    yield opened
    for client in opened.opened:
        client.close()


async def ask(client: LineClient, text: str) -> str:
    """Send ``text`` and return its one-line reply, past the events that come first."""
    await client.send(text)
    return await client.reply()


async def ask_block(client: LineClient, text: str) -> list[str]:
    """Send ``text`` and return its block reply, past the events that come first."""
    await client.send(text)
    return await client.reply_block()


async def join(client: LineClient, room: str) -> None:
    """Join ``room`` (``joined #<room>: 2 members``, then its recent messages)."""
    assert (await ask_block(client, f"/join {room}"))[0].startswith(f"joined #{room}: ")


async def heard(client: LineClient, *wanted: tuple[str, str]) -> None:
    """Read until each event ``(<sender>, <text>)`` in ``wanted`` has come, in any order
    and whatever its scope; other lines are skipped."""
    waiting = set(wanted)
    while waiting:
        found = EVENT.fullmatch(await client.read_line())
        if found is not None:
            waiting.discard((found[3], found[4]))


class Arrival(NamedTuple):
    """A connection opened in a burst: the node it went to and the first line it got."""

    node: int
    client: LineClient
    first: str


async def connect_all(clients: Clients, started: list[ServerProcess], count: int) -> list[Arrival]:
    """Open ``count`` connections at once, spread in turn over the nodes."""
    spread = [number % len(started) for number in range(count)]
    opened = await asyncio.gather(*(clients.open(started[node].port) for node in spread))
    firsts = await asyncio.gather(*(client.read_line() for client in opened))
    return [Arrival(*arrival) for arrival in zip(spread, opened, firsts, strict=True)]


def greeted_name(first: str) -> str | None:
    """The name a greeting's first line gives, or None for another line."""
    named = re.fullmatch(r"Welcome! You are (\S+)\.", first)
    return None if named is None else named[1]


async def connected_count(client: LineClient) -> int:
    """How many clients the cluster has connected, as ``status`` says."""
    header = (await ask_block(client, "status"))[0]
    counted = re.match(r"status: (\d+) of \d+ clients connected", header)
    assert counted is not None, header
    return int(counted[1])


# Names and admission


async def test_names_are_unique_under_concurrent_connects_to_three_nodes(
    nodes: Nodes, clients: Clients, redis_target: UrlFor
) -> None:
    started = await start_cluster(nodes, redis_target, "--max-clients", "30")
    arrivals = await connect_all(clients, started, 30)
    names = [greeted_name(arrival.first) for arrival in arrivals]
    assert sorted(filter(None, names)) == [client_name(n) for n in range(1, 31)], names
    for arrival in arrivals:
        await arrival.client.read_block()
    for arrival in arrivals[:NODES]:
        status = await ask_block(arrival.client, "status")
        assert status[0].startswith("status: 30 of 30 clients connected, 30 seen, 0 rejected")

    # One client on each node claims one name, in three spellings, at once.
    spellings = ["Ann", "ann", "ANN"]
    for arrival, spelling in zip(arrivals, spellings, strict=False):
        await arrival.client.send(f"/nick {spelling}")
    answers = [await arrival.client.reply() for arrival in arrivals[:NODES]]
    won = [answer for answer in answers if answer.startswith("You are now ")]
    lost = [answer for answer in answers if answer.startswith("ERROR name taken: ")]
    assert (len(won), len(lost)) == (1, 2), answers


async def test_admission_is_exact_under_a_race_over_three_nodes(
    nodes: Nodes, clients: Clients, redis_target: UrlFor
) -> None:
    started = await start_cluster(nodes, redis_target, "--max-clients", "10")
    arrivals = await connect_all(clients, started, 30)
    greeted = [arrival for arrival in arrivals if greeted_name(arrival.first)]
    full = [arrival for arrival in arrivals if arrival.first == replies.SERVER_FULL]
    assert (len(greeted), len(full)) == (10, 20), [arrival.first for arrival in arrivals]
    for arrival in full:
        assert await arrival.client.at_eof()
    for arrival in greeted:
        await arrival.client.read_block()
    # Every node that greeted someone tells the same cluster-wide counts.
    expected = "status: 10 of 10 clients connected, 10 seen, 20 rejected (server full)"
    for node in {arrival.node for arrival in greeted}:
        asking = next(arrival.client for arrival in greeted if arrival.node == node)
        assert (await ask_block(asking, "status"))[0].startswith(expected)

    # A client leaving makes room for exactly one more, on whichever node it comes to.
    leaving, staying = greeted[0].client, greeted[1].client
    assert (await ask(leaving, "exit")).startswith("Goodbye, Client")

    async def room_for_one() -> bool:
        return await connected_count(staying) == 9

    await eventually(room_for_one, "the departure is recorded")
    late = await connect_all(clients, started, 2)
    assert sorted(bool(greeted_name(arrival.first)) for arrival in late) == [False, True]


# Chat across nodes

MESSAGES = 1000


class Heard(NamedTuple):
    """An event line as a receiver read it."""

    id: int
    scope: str
    sender: str
    text: str


async def hear(client: LineClient, until: str) -> list[Heard]:
    """Every event line ``client`` reads until the one whose text is ``until``."""
    events: list[Heard] = []
    while True:
        found = EVENT.fullmatch(await client.read_line())
        if found is None:
            continue
        event = Heard(int(found[1]), found[2], found[3], found[4])
        events.append(event)
        if event.text == until:
            return events


async def test_direct_all_and_room_messages_cross_nodes_in_order_none_lost_or_repeated(
    nodes: Nodes, clients: Clients, redis_target: UrlFor
) -> None:
    first, second, third = await start_cluster(nodes, redis_target)
    ann = await clients.greeted(first, "Ann")
    bob = await clients.greeted(second, "Bob")
    cat = await clients.greeted(third, "Cat")
    for greeted in (ann, bob, cat):
        await join(greeted.client, "hall")
    # Each presence line is read before the messages: the last join is seen everywhere.
    for greeted in (ann, bob):
        await heard(greeted.client, ("*", "Cat joined"))

    # 1,000 of each kind, sent at once: the room, everyone, and each receiver directly.
    lines = []
    for number in range(MESSAGES):
        lines += [f"/say hall r{number}", f"/all a{number}"]
        lines += [f"/msg Bob d{number}", f"/msg cat d{number}"]
    lines.append("/all end")
    listening = [asyncio.ensure_future(hear(greeted.client, "end")) for greeted in (bob, cat)]

    async def acknowledged() -> list[str]:
        # Only acknowledgements: the sender hears none of its own messages.
        return [await ann.client.read_line() for _ in lines]

    sending = ann.client.send_raw("".join(f"{line}\n" for line in lines).encode())
    _, acks = await asyncio.gather(sending, acknowledged())
    assert acks == [f"{line} ACK" for line in lines]
    for receiver, events in zip((bob, cat), await asyncio.gather(*listening), strict=True):
        expected = []
        for number in range(MESSAGES):
            expected += [("#hall", "Ann", f"r{number}"), ("all", "Ann", f"a{number}")]
            expected.append(("direct", f"Ann>{receiver.name}", f"d{number}"))
        expected.append(("all", "Ann", "end"))
        assert [(event.scope, event.sender, event.text) for event in events] == expected
        for scope in ("#hall", "all", "direct"):
            ids = [event.id for event in events if event.scope == scope]
            assert ids == sorted(set(ids)), f"{scope}: ids increase and none comes twice"


# The cluster's views, from any node


async def three_in_rooms(
    nodes: Nodes, clients: Clients, url_for: UrlFor
) -> tuple[list[ServerProcess], list[Greeted]]:
    """Three nodes with Ann, Bob and Cat, one on each, in #dev (Bob in #ops too), each
    having said where it is in #dev; a fourth client came to the third node and left."""
    started = await start_cluster(nodes, url_for, "--max-clients", "10")
    people = [
        await clients.greeted(node, nick)
        for node, nick in zip(started, ("Ann", "Bob", "Cat"), strict=True)
    ]
    for person in people:
        await join(person.client, "dev")
    await join(people[1].client, "ops")
    for number, person in enumerate(people, 1):
        assert await ask(person.client, f"/say dev from node {number}") == (
            f"/say dev from node {number} ACK"
        )
    gone = await clients.greeted(started[2])
    assert await ask(gone.client, "exit") == f"Goodbye, {gone.name}."
    assert await gone.client.at_eof()

    async def departed() -> bool:
        return await connected_count(people[0].client) == 3

    await eventually(departed, f"{gone.name}'s departure is recorded")
    return started, people


async def test_who_rooms_members_history_and_status_are_the_clusters_from_any_node(
    nodes: Nodes, clients: Clients, one_redis: UrlFor
) -> None:
    _, people = await three_in_rooms(nodes, clients, one_redis)
    for person in people:
        asking = person.client
        assert await ask_block(asking, "who") == [
            "who: 3 connected",
            "Ann #dev",
            "Bob #dev #ops",
            "Cat #dev",
        ]
        assert await ask_block(asking, "/rooms") == ["rooms: 2", "#dev 3", "#ops 1"]
        assert await ask_block(asking, "/members dev") == [
            "members of #dev: 3",
            "Ann",
            "Bob",
            "Cat",
        ]
        history = await ask_block(asking, "/history dev")
        assert history[0] == "history #dev: 3 messages"
        said = [EVENT.fullmatch(line) for line in history[1:]]
        assert [(found[2], found[3], found[4]) for found in said if found] == [
            ("#dev", "Ann", "from node 1"),
            ("#dev", "Bob", "from node 2"),
            ("#dev", "Cat", "from node 3"),
        ]
        status = await ask_block(asking, "status")
        assert status[0] == (
            "status: 3 of 10 clients connected, 4 seen, 0 rejected (server full),"
            " 0 dropped from the cache"
        )
        assert [line.split()[0] for line in status[1:]] == ["Ann", "Bob", "Cat", "Client04"]
        for number, line in enumerate(status[1:4], 1):
            assert f" still connected (was {client_name(number)}) on " in line, line
        assert "(exit) on " in status[4]


async def test_status_shows_the_node_each_client_is_or_was_on(
    nodes: Nodes, clients: Clients, one_redis: UrlFor
) -> None:
    started, people = await three_in_rooms(nodes, clients, one_redis)
    status = await ask_block(people[0].client, "status")
    # Ann, Bob and Cat on the first, second and third node; Client04 was on the third.
    on = [started[0], started[1], started[2], started[2]]
    for line, node in zip(status[1:], on, strict=True):
        assert re.search(rf"(?<![\d.]){re.escape(node_id(node))}(?!\d)", line), (
            line,
            node_id(node),
        )


async def test_nodes_exit_0_at_once_on_sigterm_right_after_their_clients_left(
    nodes: Nodes, clients: Clients, one_redis: UrlFor
) -> None:
    await three_in_rooms(nodes, clients, one_redis)
    # Their sessions are held (closed without exit) as the nodes are told to stop.
    for client in clients.opened:
        client.close()
    # A node still running after nodes.STOP_TIMEOUT is killed: -9.
    assert await nodes.stop_all() == [0, 0, 0]


# Sessions that move


async def resume(client: LineClient, token: str) -> list[str]:
    """Greet ``client`` and resume the session of ``token``; the reply block."""
    await greeting(client)
    return await ask_block(client, f"/resume {token}")


async def test_a_client_that_lost_its_connection_to_one_node_resumes_on_another(
    nodes: Nodes, clients: Clients, one_redis: UrlFor
) -> None:
    first, second, third = await start_cluster(nodes, one_redis)
    wanderer = await clients.greeted(first, "Wanderer")
    friend = await clients.greeted(third, "Friend")
    await join(wanderer.client, "camp")
    await join(wanderer.client, "fire")
    await join(friend.client, "camp")
    # Closed with a line still unread, the socket would end with a reset, not a close.
    await heard(wanderer.client, ("*", "Friend joined"))

    # The connection is lost: the socket closes without exit.
    wanderer.client.close()
    await heard(friend.client, ("*", "Wanderer lost the connection"))
    assert await ask_block(friend.client, "/members camp") == [
        "members of #camp: 2",
        "Friend",
        "Wanderer (away)",
    ]
    assert await ask(friend.client, "/say camp are you there?") == "/say camp are you there? ACK"
    assert await ask(friend.client, "/msg wanderer call me") == "/msg wanderer call me ACK"

    back = await clients.open(second.port)
    resumed = await resume(back, wanderer.token)
    assert resumed[0] == "Resumed: you are Wanderer again in #camp, #fire; 2 missed messages follow"
    missed = [EVENT.fullmatch(line) for line in resumed[1:]]
    assert [(found[2], found[3], found[4]) for found in missed if found] == [
        ("#camp", "Friend", "are you there?"),
        ("direct", "Friend>Wanderer", "call me"),
    ]
    await heard(friend.client, ("*", "Wanderer is back"))
    assert await ask(back, "/say camp here, on another node") == (
        "/say camp here, on another node ACK"
    )
    await heard(friend.client, ("Wanderer", "here, on another node"))
    assert (
        await ask(friend.client, "/msg Wanderer welcome back") == "/msg Wanderer welcome back ACK"
    )
    await heard(back, ("Friend>Wanderer", "welcome back"))
    assert await ask_block(friend.client, "who") == [
        "who: 2 connected",
        "Friend #camp",
        "Wanderer #camp #fire",
    ]
    status = await ask_block(friend.client, "status all")
    wanderings = [line for line in status[1:] if line.startswith("Wanderer ")]
    assert len(wanderings) == 2, status
    # Each of its sessions is shown on the node it was on: the first, then the second.
    assert wanderings[0].endswith(f"(closed by peer) (was Client01) on {node_id(first)}")
    assert re.search(
        rf" still connected \(was Client03\) on {re.escape(node_id(second))}$", wanderings[1]
    ), wanderings[1]


async def test_a_drained_nodes_clients_reconnect_to_another_node_and_resume(
    nodes: Nodes, clients: Clients, one_redis: UrlFor
) -> None:
    first, second, third = await start_cluster(nodes, one_redis)
    ann = await clients.greeted(first, "Ann")
    bob = await clients.greeted(first, "Bob")
    cat = await clients.greeted(third, "Cat")
    for greeted in (ann, bob, cat):
        await join(greeted.client, "camp")
    await heard(ann.client, ("*", "Cat joined"))
    await heard(bob.client, ("*", "Cat joined"))

    first.send_signal(signal.SIGUSR1)
    for greeted in (ann, bob):
        assert await greeted.client.reply() == NOTICE
    # Until they go, they are served: a last message, then each closes without exit.
    assert await ask(ann.client, "/say camp moving") == "/say camp moving ACK"
    for greeted in (ann, bob):
        greeted.client.close()
    assert await first.wait() == 0
    await heard(cat.client, ("*", "Ann lost the connection"), ("*", "Bob lost the connection"))
    assert await ask(cat.client, "/say camp while you moved") == "/say camp while you moved ACK"

    for greeted in (ann, bob):
        back = await clients.open(second.port)
        resumed = await resume(back, greeted.token)
        assert re.fullmatch(
            rf"Resumed: you are {greeted.name} again in #camp; \d+ missed messages follow",
            resumed[0],
        ), resumed
        # Besides what the others did meanwhile (presence lines), what was said: Bob,
        # who resumes second, also missed what Ann said once back.
        said = [("Cat", "while you moved")]
        if greeted is bob:
            said.append(("Ann", "Ann is here"))
        missed = [EVENT.fullmatch(line) for line in resumed[1:]]
        assert [(found[3], found[4]) for found in missed if found and found[3] != "*"] == said
        await heard(cat.client, ("*", f"{greeted.name} is back"))
        assert await ask(back, f"/say camp {greeted.name} is here") == (
            f"/say camp {greeted.name} is here ACK"
        )
        await heard(cat.client, (greeted.name, f"{greeted.name} is here"))
    status = await ask_block(cat.client, "status")
    drained = [line for line in status[1:] if "(drained)" in line]
    assert [line.split()[0] for line in drained] == ["Ann", "Bob"]


# Behind HAProxy


def node_of(started: list[ServerProcess], name: str) -> int | None:
    """Which node logged that the client ``name`` connected (they log at debug level)."""
    logged = [
        number
        for number, node in enumerate(started)
        if any(f" {name} connected from " in line for line in node.log)
    ]
    assert len(logged) <= 1, (name, logged)
    return logged[0] if logged else None


async def test_clients_through_haproxy_land_on_different_nodes_and_chat(
    nodes: Nodes, clients: Clients, haproxy: ProxyFactory, one_redis: UrlFor
) -> None:
    # Room for the clients and HAProxy's health checks, which come and go.
    started = await start_cluster(nodes, one_redis, "--max-clients", "20", "--log-level", "debug")
    proxy = await haproxy([node.port for node in started])
    people = [await greeting(await clients.open(proxy.port)) for _ in range(6)]
    on: dict[str, int] = {}

    async def every_arrival_logged() -> bool:
        for person in people:
            node = node_of(started, person.name)
            if node is None:
                return False
            on[person.name] = node
        return True

    await eventually(every_arrival_logged, "each node logged its clients' arrival")
    assert sorted(set(on.values())) == [0, 1, 2], on
    # One client of each node, by name: Ann on the first, Bob the second, Cat the third.
    chosen = [next(p for p in people if on[p.name] == node) for node in range(NODES)]
    ann, bob, cat = (
        person._replace(name=nick)
        for person, nick in zip(chosen, ("Ann", "Bob", "Cat"), strict=True)
    )
    for person in (ann, bob, cat):
        assert await ask(person.client, f"/nick {person.name}") == f"You are now {person.name}."
        await join(person.client, "lobby")
    assert await ask(ann.client, "/msg Bob hello Bob") == "/msg Bob hello Bob ACK"
    await heard(bob.client, ("Ann>Bob", "hello Bob"))
    assert await ask(bob.client, "/say lobby hello lobby") == "/say lobby hello lobby ACK"
    await heard(ann.client, ("Bob", "hello lobby"))
    await heard(cat.client, ("Bob", "hello lobby"))
    assert await ask(cat.client, "/all hello all") == "/all hello all ACK"
    for person in (ann, bob):
        await heard(person.client, ("Cat", "hello all"))
    # The three are in the room (HAProxy's health checks come and go besides).
    who = await ask_block(ann.client, "who")
    assert {"Ann #lobby", "Bob #lobby", "Cat #lobby"} <= set(who[1:]), who


# Redis Cluster: which master a node is given


async def test_nodes_given_any_master_of_a_redis_cluster_reach_the_clusters_keys(
    nodes: Nodes, clients: Clients, redis_cluster: RedisCluster
) -> None:
    name = fresh_cluster()
    owner = redis_cluster.owner_of(f"{{{name}}}:")
    # Each node is given one of the masters that do not hold the cluster's slot: they
    # answer its commands with MOVED, which names the one that does.
    first, second = await nodes.start_each(
        *(
            ("--redis", redis_url(port), "--cluster-name", name)
            for port in redis_cluster.others_than(owner)
        )
    )
    ann = await clients.greeted(first, "Ann")
    bob = await clients.greeted(second, "Bob")
    assert await ask(bob.client, "/msg ann across the Redis Cluster") == (
        "/msg ann across the Redis Cluster ACK"
    )
    await heard(ann.client, ("Bob>Ann", "across the Redis Cluster"))
    # Each logged, before it listened, where the cluster's slot is.
    said = f"the Redis Cluster master at 127.0.0.1:{owner} holds the cluster's slot"
    for node in (first, second):
        assert any(said in line for line in node.log), node.log
