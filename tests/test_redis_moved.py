"""A Redis Cluster that moves the cluster's slot under running nodes (src/.../slot.py).

The helpers first: what a ``MOVED``, ``ASK`` or ``TRYAGAIN`` reply says (parsed by
redis-py's own parser, as the node gets it), and that a connection made for another
master keeps the URL's password, TLS options and database. Then real nodes on a real
Redis Cluster (tests/rediscluster.py), one given the master that holds the cluster's
slot and one given another: the slot is migrated to the third master, or a replica of
its master takes over, while two clients chat, and every line sent at once after the
move (so that the old master redirects whole batches) is acknowledged and heard once,
in order, with the history kept. Last, a slot that stays half migrated (every command
answered ASK) counts as unreachable after a few tries, instead of being tried forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import hiredis
import pytest
from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import ResponseError

from ackchat.backend.interface import BackendUnavailableError
from ackchat.backend.redis.commands import make_connection
from ackchat.backend.redis.slot import (
    MAX_REDIRECTS,
    Moved,
    Redirection,
    is_redirection,
    moved,
    pause,
    shown,
)
from backends import fresh_cluster, redis_backend, redis_url
from lineclient import LineClient
from nodes import Nodes
from rediscluster import RedisCluster
from test_cluster_nodes import EVENT, Clients, ask, ask_block, heard, join
from test_redis_backend import Inbox, answer

# Replies as Redis sends them, after the leading ``-``.
MOVED = "MOVED 6508 127.0.0.1:7002"
# A heartbeat TTL long enough that no beat (a script) runs while the test migrates the
# slot: one that ran between the keys' move and the slot's would be refused midway.
TTL = "30"
LINES = 15


def error_of(reply: str) -> ResponseError:
    """The exception the node's parser (hiredis, with redis-py's errors) makes of the
    error reply ``reply``."""
    reader = hiredis.Reader(replyError=BaseParser.parse_error)
    reader.feed(f"-{reply}\r\n".encode())
    error = reader.gets()
    assert isinstance(error, ResponseError)
    return error


def redirection_of(reply: str) -> Redirection:
    """The redirection redis-py makes of ``reply``."""
    error = error_of(reply)
    assert is_redirection(error), error
    return error


def test_moved_names_the_slot_and_the_master_that_holds_it() -> None:
    assert moved(redirection_of(MOVED), "10.0.0.1") == Moved(6508, ("127.0.0.1", 7002))
    assert moved(redirection_of("MOVED 1 ::1:7003"), "10.0.0.1") == Moved(1, ("::1", 7003))


def test_a_moved_without_a_host_means_the_host_it_came_from() -> None:
    assert moved(redirection_of("MOVED 6508 :7002"), "10.0.0.1") == Moved(6508, ("10.0.0.1", 7002))


def test_a_migration_under_way_leaves_the_slot_where_it_is() -> None:
    for reply in ("ASK 6508 127.0.0.1:7002", "TRYAGAIN Multiple keys request during rehashing"):
        assert moved(redirection_of(reply), "10.0.0.1") is None


def test_a_cluster_down_for_a_moment_is_waited_out_where_the_slot_is() -> None:
    assert moved(redirection_of("CLUSTERDOWN The cluster is down"), "10.0.0.1") is None


def test_other_errors_are_no_redirections() -> None:
    for reply in ("ERR unknown command", "NOSCRIPT No matching script", "READONLY replica"):
        assert not is_redirection(error_of(reply))
    assert not is_redirection(b"OK")


def test_the_pauses_during_a_migration_grow() -> None:
    pauses = [pause(redirects) for redirects in range(1, MAX_REDIRECTS + 1)]
    assert pauses == sorted(pauses)
    assert len(set(pauses)) == MAX_REDIRECTS
    assert sum(pauses) < 2.0


def test_addresses_are_shown_with_ipv6_hosts_in_brackets() -> None:
    assert (shown(("127.0.0.1", 7002)), shown(("::1", 7002))) == ("127.0.0.1:7002", "[::1]:7002")


def test_a_connection_to_another_master_keeps_the_urls_password_tls_and_database() -> None:
    url = "rediss://:secret@127.0.0.1:7001/3?ssl_ca_certs=/etc/ca.pem"
    connection = make_connection(url, "node", address=("10.0.0.2", 7002))
    assert isinstance(connection, SSLConnection)
    assert (connection.host, connection.port) == ("10.0.0.2", 7002)
    assert (connection.password, connection.db) == ("secret", 3)
    assert connection.ca_certs == "/etc/ca.pem"


def test_a_socket_url_reaches_another_master_over_tcp() -> None:
    connection = make_connection("unix:///run/redis.sock?db=2", "node", address=("::1", 7002))
    assert type(connection) is Connection
    assert (connection.host, connection.port, connection.db) == ("::1", 7002, 2)


# Real nodes on a Redis Cluster whose slot moves


@pytest.fixture
async def people() -> AsyncIterator[Clients]:
    """Line clients to the nodes; every one is closed after the test."""
    opened = Clients()
    yield opened
    for client in opened.opened:
        client.close()


async def said_in_dev(client: LineClient, count: int) -> list[tuple[str, str]]:
    """The next ``count`` messages of #dev that ``client`` hears: (sender, text)."""
    said: list[tuple[str, str]] = []
    while len(said) < count:
        found = EVENT.fullmatch(await client.read_line())
        if found is not None and found[2] == "#dev":
            said.append((found[3], found[4]))
    return said


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_a_chat_goes_on_when_the_clusters_slot_moves_to_another_master(
    nodes: Nodes, people: Clients, redis_cluster: RedisCluster
) -> None:
    name = fresh_cluster()
    key = f"{{{name}}}:"
    owner = redis_cluster.owner_of(key)
    other, target = redis_cluster.others_than(owner)
    options = ("--cluster-name", name, "--heartbeat-ttl", TTL)
    first, second = await asyncio.gather(
        nodes.start_node("--redis", redis_url(owner), *options),
        nodes.start_node("--redis", redis_url(other), *options),
    )
    ann = await people.greeted(first, "Ann")
    bob = await people.greeted(second, "Bob")
    cat = await people.greeted(second, "Cat")
    await join(ann.client, "dev")
    await join(bob.client, "dev")
    await heard(ann.client, ("*", "Bob joined"))
    assert await ask(ann.client, "/say dev before the move") == "/say dev before the move ACK"
    assert await said_in_dev(bob.client, 1) == [("Ann", "before the move")]

    redis_cluster.move_slot_of(key, target)
    # A departure redirected is recorded as it was asked for, once the node follows.
    assert await ask(cat.client, "exit") == "Goodbye, Cat."
    # Sent at once: the node sends them in batches, which the old master redirects.
    texts = [f"after the move {number}" for number in range(LINES)]
    await bob.client.send_raw("".join(f"/say dev {text}\n" for text in texts).encode())
    assert [await bob.client.reply() for _ in texts] == [f"/say dev {text} ACK" for text in texts]
    assert await said_in_dev(ann.client, LINES) == [("Bob", text) for text in texts]
    assert await ask(ann.client, "/msg bob still here") == "/msg bob still here ACK"
    await heard(bob.client, ("Ann>Bob", "still here"))

    history = await ask_block(bob.client, "/history dev")
    assert history[0] == f"history #dev: {LINES + 1} messages"
    said = [EVENT.fullmatch(line) for line in history[1:]]
    assert [(found[3], found[4]) for found in said if found] == [
        ("Ann", "before the move"),
        *[("Bob", text) for text in texts],
    ]
    status = await ask_block(ann.client, "status")
    assert status[0].startswith("status: 2 of 3 clients connected, 3 seen, 0 rejected"), status
    (left,) = [line for line in status[1:] if line.startswith("Cat ")]
    assert " (exit) " in left, status
    moved_there = rf"the Redis Cluster master at 127\.0\.0\.1:{target} holds the cluster's slot"
    for node in (first, second):
        await node.wait_for_log(moved_there)
        # Followed, not taken for an outage: no operation was refused meanwhile.
        assert not [line for line in node.log if "reconnecting" in line], node.log


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_a_chat_goes_on_when_a_replica_takes_over_the_clusters_slot(
    nodes: Nodes, people: Clients, redis_cluster: RedisCluster
) -> None:
    name = fresh_cluster()
    owner = redis_cluster.owner_of(f"{{{name}}}:")
    other, _ = redis_cluster.others_than(owner)
    replica = redis_cluster.add_replica(owner)
    first, second = await asyncio.gather(
        nodes.start_node("--redis", redis_url(owner), "--cluster-name", name),
        nodes.start_node("--redis", redis_url(other), "--cluster-name", name),
    )
    ann = await people.greeted(first, "Ann")
    bob = await people.greeted(second, "Bob")
    await join(ann.client, "dev")
    await join(bob.client, "dev")
    await heard(ann.client, ("*", "Bob joined"))
    assert await ask(ann.client, "/say dev before") == "/say dev before ACK"
    assert await said_in_dev(bob.client, 1) == [("Ann", "before")]

    redis_cluster.fail_over(replica)
    texts = [f"after {number}" for number in range(LINES)]
    await bob.client.send_raw("".join(f"/say dev {text}\n" for text in texts).encode())
    assert [await bob.client.reply() for _ in texts] == [f"/say dev {text} ACK" for text in texts]
    assert await said_in_dev(ann.client, LINES) == [("Bob", text) for text in texts]
    history = await ask_block(ann.client, "/history dev")
    said = [EVENT.fullmatch(line) for line in history[1:]]
    assert [(found[3], found[4]) for found in said if found] == [
        ("Ann", "before"),
        *[("Bob", text) for text in texts],
    ]
    taken_over = rf"the Redis Cluster master at 127\.0\.0\.1:{replica} holds the cluster's slot"
    for node in (first, second):
        await node.wait_for_log(taken_over)
        # The commands were redirected, not refused (the reader's blocked read was ended
        # by the old master, and read again).
        assert not [line for line in node.log if "chat are turned away" in line], node.log


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_a_slot_that_stays_on_its_way_to_another_master_counts_as_unreachable(
    redis_cluster: RedisCluster,
) -> None:
    name = fresh_cluster()
    key = f"{{{name}}}:"
    owner = redis_cluster.owner_of(key)
    _, target = redis_cluster.others_than(owner)
    # A migration that never ends: every key the node asks for (none is there yet) is
    # answered ASK, again and again.
    redis_cluster.start_moving(key, target)
    try:
        with pytest.raises(BackendUnavailableError) as refused:
            await redis_backend(redis_url(owner), cluster=name, node="a").start()
    finally:
        redis_cluster.stop_moving(key)
    assert str(refused.value) == (
        f"cannot reach Redis at 127.0.0.1:{owner}/0: Redis Cluster redirected the"
        f" cluster's slot {MAX_REDIRECTS} times in a row"
    )
    # The migration called off, a node starts there as usual.
    backend = redis_backend(redis_url(owner), cluster=name, node="a")
    await backend.start()
    try:
        admitted = await answer(backend.admit("10.0.0.1:1", Inbox()))
        assert admitted is not None
    finally:
        await backend.close()
