"""The admin API of a cluster: every action works whichever node receives it.

Two real ``ackchat serve --http`` processes of one cluster on one redis-server
(tests/nodes.py): a kick asked for on node A disconnects a client of node B, which is
told why and recorded as ``kicked``; ``ackchat admin kick`` works against any node; a
name connected nowhere (never seen, or held for ``/resume``) is a 404. A live setting
changed on one node (``PATCH /api/config``, SIGHUP) is the cluster's: the other node
applies the idle timeout, the rate limit and the history sizes to its own clients, and
a node started later runs with the cluster's values rather than its own. Two Redis
backends changing a setting at once both end with the value Redis ran last.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio

from ackchat.backend.interface import SettingValue
from ackchat.backend.pending import Result
from ackchat.cli import main
from ackchat.http.settle import settled
from ackchat.protocol import replies
from adminhttp import TOKEN
from backends import fresh_cluster, redis_backend, redis_url
from lineclient import WAIT, LineClient, bounded, eventually, renamed
from nodes import Nodes
from redisserver import RedisServer
from serverprocess import ServerProcess

# Each node is a process of its own: a second event loop in the tests adds nothing.
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

ADMIN_LISTENING = r"admin API and /metrics on http://127\.0\.0\.1:(\d+)/"


@dataclass
class Node:
    """A node of the cluster and the URL of its admin API."""

    process: ServerProcess
    url: str

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def id(self) -> str:
        """The name the node gives itself in the cluster (not told one)."""
        return f"127.0.0.1:{self.process.port}"


class Cluster:
    """Nodes of one fresh cluster with their admin APIs, and an HTTP session to call them."""

    def __init__(self, nodes: Nodes, url: str, session: aiohttp.ClientSession) -> None:
        self._nodes = nodes
        self._url = url
        self._name = fresh_cluster()
        self.session = session
        self.clients: list[LineClient] = []

    async def node(self, *options: str) -> Node:
        """Start a node of the cluster with ``options``, its admin API on a free port."""
        process = await self._nodes.start_node(
            *("--redis", self._url, "--cluster-name", self._name, "--http", "0", *options),
            env={"ACKCHAT_ADMIN_TOKEN": TOKEN},
        )
        port = int((await process.wait_for_log(ADMIN_LISTENING)).group(1))
        return Node(process, f"http://127.0.0.1:{port}")

    async def two_nodes(self) -> tuple[Node, Node]:
        """Two nodes of the cluster with the default options, started at once (each start
        is mostly a new process's imports)."""
        a, b = await asyncio.gather(self.node(), self.node())
        return a, b

    async def call(self, node: Node, method: str, path: str, body: object = None) -> Any:
        """One admin API request to ``node``, with the token: its status and JSON answer."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with self.session.request(
            method, node.url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def client(self, node: Node, name: str) -> LineClient:
        """A client of ``node``, greeted and renamed ``name``; closed after the test."""
        client = await LineClient.open(node.port)
        self.clients.append(client)
        return await renamed(client, name)


@pytest.fixture
async def cluster(redis_server: RedisServer, nodes: Nodes) -> AsyncIterator[Cluster]:
    """A fresh cluster on the module's redis-server; its nodes are started by the test."""
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        made = Cluster(nodes, redis_url(redis_server.port), session)
        yield made
        for client in made.clients:
            client.close()


async def test_a_kick_on_one_node_disconnects_a_client_of_another(cluster: Cluster) -> None:
    a, b = await cluster.two_nodes()
    bob = await cluster.client(b, "bob")
    await cluster.client(a, "ann")

    status, body = await cluster.call(a, "DELETE", "/api/clients/BOB")
    assert (status, body) == (200, {"kicked": "bob"})
    assert await bob.read_line() == replies.KICKED
    assert await bob.at_eof()
    await a.process.wait_for_log(
        rf"admin API \(127\.0\.0\.1\): kicked bob \(127\.0\.0\.1:{bob.local_port}\)"
        rf" on node {re.escape(b.id)}$"
    )
    await b.process.wait_for_log(rf"bob kicked \(asked for on node {re.escape(a.id)}\)$")

    async def recorded_on_both() -> bool:
        views = [await cluster.call(node, "GET", "/api/status?all=1") for node in (a, b)]
        reasons = [
            {session["name"]: session["reason"] for session in body["sessions"]}
            for _, body in views
        ]
        return all(seen == {"bob": "kicked", "ann": None} for seen in reasons)

    await eventually(recorded_on_both, "both nodes show bob as kicked", interval=0.05)
    # Node B's own counts say it disconnected bob for the kick.
    _, shown = await cluster.call(b, "GET", "/api/status")
    assert shown["counters"]["disconnections"]["kicked"] == 1


async def test_a_name_connected_nowhere_is_not_found(cluster: Cluster) -> None:
    a, b = await cluster.two_nodes()
    status, body = await cluster.call(a, "DELETE", "/api/clients/nobody")
    assert status == 404
    assert body == {
        "error": "no client called nobody is connected to any node of the cluster",
        "field": "name",
    }
    # A client that lost its connection is held for /resume: not connected, not kicked.
    cat = await cluster.client(b, "cat")
    cat.reset()

    async def held() -> bool:
        _, clients = await cluster.call(a, "GET", "/api/clients")
        return bool(clients["connected"] == 0)

    await eventually(held, "cat's connection is lost", interval=0.05)
    status, body = await cluster.call(a, "DELETE", "/api/clients/cat")
    assert status == 404
    _, shown = await cluster.call(a, "GET", "/api/status?all=1")
    assert [session["reason"] for session in shown["sessions"]] == ["reset"]


async def test_the_admin_command_kicks_a_client_of_another_node(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = await cluster.two_nodes()
    dan = await cluster.client(a, "dan")

    def admin(*words: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["admin", "--url", b.url, *words], {"ACKCHAT_ADMIN_TOKEN": TOKEN})
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert await asyncio.to_thread(admin, "kick", "dan") == (0, "kicked dan\n", "")
    assert await dan.read_line() == replies.KICKED
    assert await dan.at_eof()
    code, _, err = await asyncio.to_thread(admin, "kick", "dan")
    assert code == 8
    assert "no client called dan is connected to any node of the cluster" in err


async def test_an_idle_timeout_set_on_one_node_disconnects_a_client_of_another(
    cluster: Cluster,
) -> None:
    a, b = await cluster.two_nodes()
    eve = await cluster.client(b, "eve")
    status, body = await cluster.call(a, "PATCH", "/api/config", {"idle_timeout": 1})
    assert status == 200
    assert body["changed"] == {"idle_timeout": {"from": 0.0, "to": 1.0}}
    # Eve was silent since her /nick, so node B closes her within a second of hearing it.
    assert await eve.read_line() == replies.idle_timeout(1.0).decode().rstrip("\r\n")
    assert await eve.at_eof()
    await b.process.wait_for_log(rf"idle_timeout 0\.0 -> 1\.0 \(set on node {re.escape(a.id)}\)$")
    _, shown = await cluster.call(b, "GET", "/api/status?all=1")
    assert shown["limits"]["idle_timeout"] == 1.0
    assert [session["reason"] for session in shown["sessions"]] == ["idle timeout"]


async def test_a_sighup_on_one_node_changes_the_idle_timeout_of_every_node(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = tmp_path / "ackchat.toml"
    config.write_text("[serve]\nidle_timeout = 0\n")
    a = await cluster.node("--config", str(config))
    b = await cluster.node()
    hal = await cluster.client(b, "hal")
    config.write_text("[serve]\nidle_timeout = 1\n")
    a.process.send_signal(signal.SIGHUP)
    await a.process.wait_for_log(rf"reload of {re.escape(str(config))}: idle_timeout 0.0 -> 1.0$")
    assert await hal.read_line() == replies.idle_timeout(1.0).decode().rstrip("\r\n")
    assert await hal.at_eof()
    # Another reload of node A's unchanged file keeps the cluster's value.
    a.process.send_signal(signal.SIGHUP)
    await a.process.wait_for_log(rf"reload of {re.escape(str(config))}: nothing changed$")
    _, shown = await cluster.call(b, "GET", "/api/status")
    assert shown["limits"]["idle_timeout"] == 1.0


async def test_history_sizes_and_rate_limits_set_on_one_node_hold_on_another(
    cluster: Cluster,
) -> None:
    a, b = await cluster.two_nodes()
    fay = await cluster.client(b, "fay")

    async def running_with(limits: Mapping[str, object]) -> None:
        async def heard() -> bool:
            _, shown = await cluster.call(b, "GET", "/api/status")
            return all(shown["limits"][name] == value for name, value in limits.items())

        await eventually(heard, f"node B runs with {limits}", interval=0.05)

    assert (await cluster.call(a, "PATCH", "/api/config", {"room_history": 2}))[0] == 200
    await running_with({"room_history": 2})
    await fay.send("/join dev")
    assert (await fay.reply_block())[0] == "joined #dev: 1 member"
    for text in ("m1", "m2", "m3"):
        assert await fay.ask(f"/say dev {text}") == f"/say dev {text} ACK"
    await fay.send("/history dev")
    page = await fay.reply_block()
    assert [line.rsplit(": ", 1)[-1] for line in page[1:]] == ["m2", "m3"]

    changes = {"rate_limit": 1, "rate_burst": 2}
    assert (await cluster.call(a, "PATCH", "/api/config", changes))[0] == 200
    await running_with(changes)
    # A new rate starts with a full burst of two lines; the third at once is refused.
    assert [await fay.ask(text) for text in ("one", "two")] == ["one ACK", "two ACK"]
    assert await fay.ask("three") == replies.rate_limited(1.0).decode().rstrip("\r\n")


async def test_a_node_started_later_runs_with_the_clusters_live_settings(
    cluster: Cluster,
) -> None:
    a = await cluster.node("--idle-timeout", "30")
    status, _ = await cluster.call(a, "PATCH", "/api/config", {"rate_strikes": 7})
    assert status == 200
    c = await cluster.node("--idle-timeout", "0", "--rate-strikes", "100")
    # Logged as it joined, before it listened.
    joined = re.compile(
        r"joined the cluster: running with its live settings .*idle_timeout 30\.0"
        r" \(this node had 0\.0\)"
    )
    assert any(joined.search(line) for line in c.process.log), c.process.log
    _, shown = await cluster.call(c, "GET", "/api/status")
    assert (shown["limits"]["idle_timeout"], shown["limits"]["rate_strikes"]) == (30.0, 7)


async def test_every_node_hears_the_live_settings_and_concurrent_changes_agree(
    redis_server: RedisServer,
) -> None:
    url, name = redis_url(redis_server.port), fresh_cluster()
    shared = {"idle_timeout": 0.0, "rate_limit": 100.0}
    a = redis_backend(url, cluster=name, node="a", live_settings=shared)
    b = redis_backend(url, cluster=name, node="b", live_settings=shared)
    heard: dict[str, list[dict[str, SettingValue]]] = {"a": [], "b": []}
    a.watch_settings(lambda values: heard["a"].append(dict(values)))
    b.watch_settings(lambda values: heard["b"].append(dict(values)))
    await a.start()
    await b.start()
    try:
        # Joining, each hears the cluster's values: node a's (the first), as b's are.
        assert heard["b"][0]["idle_timeout"] == 0.0
        changes: list[Result[None]] = [
            a.share_settings({"idle_timeout": 5.0}),
            b.share_settings({"idle_timeout": 9.0, "rate_limit": 1.0}),
        ]
        for change in changes:
            await bounded(settled(change))

        def last(node: str) -> dict[str, SettingValue]:
            merged: dict[str, SettingValue] = {}
            for values in heard[node]:
                merged.update(values)
            return merged

        async def agreed() -> bool:
            return last("a") == last("b") and len(heard["a"]) >= 3

        await eventually(agreed, "both nodes heard both changes", interval=0.02)
        # Whichever change Redis ran last is every node's.
        client = redis.asyncio.from_url(url)
        try:
            kept = await client.hget(f"{{{name}}}:live", "idle_timeout")
        finally:
            await client.aclose()
        assert kept is not None
        assert last("a")["idle_timeout"] == float(kept)
        assert last("a")["rate_limit"] == 1.0
    finally:
        await a.close()
        await b.close()
