"""The browser flows of test_browser_dashboard.py and test_browser_chat.py on a cluster of
two ``ackchat serve`` processes sharing one redis-server: the browser on node A (the one
with ``--http``), the TCP clients on node B.

Node A's dashboard shows node B's clients (with their node) as they come, kicks one
(which node B tells why) and raises the cluster's max_clients so that node B admits a
fourth; a chat page user on A and a netcat-style user on B exchange direct and room
messages, and markup between them is shown as text on both pages. The tests share the
cluster and one browser; each starts once the clients of the tests before it have gone
and max_clients is back at 3. The last one stops Redis for a while: the dashboard says
how old what it shows is.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
from playwright.async_api import expect

from ackchat.protocol import replies
from adminhttp import TOKEN
from backends import fresh_cluster, redis_url
from browser import (
    BROWSER_MODULE_LOOP,
    SHOWN_WITHIN,
    Pages,
    chat,
    chromium,
    dashboard,
    shared_browser,
    shared_pages,
)
from browserflows import exchange_direct_and_room_messages, markup_is_shown_as_text_on_both_pages
from lineclient import WAIT, LineClient, eventually, renamed
from nodes import Nodes
from redisserver import RedisServer
from serverprocess import ServerProcess

# The fixtures, imported to be used here.
__all__ = ["chromium", "shared_browser", "shared_pages"]

pytestmark = BROWSER_MODULE_LOOP

MAX_CLIENTS = 3
DASHBOARD = r"dashboard on http://127\.0\.0\.1:(\d+)/"
# What the feed says while the node cannot reach Redis (ackchat.http.live).
UNAVAILABLE = "the server cannot reach its shared state; try again later"
# Milliseconds within which node A's dashboard shows node B's arrivals, as for one server
# (test_browser_dashboard.py). Node A looks at the cluster's version every 0.25 s
# (live.CHECK_INTERVAL, one round trip to Redis) and pushes once it changed.
OTHER_NODE_SHOWN_WITHIN = 1000
# What the dashboard shows for a value it does not have.
NOT_KNOWN = "\N{EN DASH}"


@dataclass
class Cluster:
    """Node A (with the HTTP side: ``url``) and node B, and an HTTP session to call A."""

    a: ServerProcess
    b: ServerProcess
    url: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: object = None) -> Any:
        """One admin API request to node A, with the token; its JSON answer."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            assert response.ok, (response.status, await response.text())
            return await response.json()


@dataclass
class TcpUsers:
    """Line clients of one node; each is closed after the test."""

    port: int
    opened: list[LineClient] = field(default_factory=list)

    async def open(self) -> LineClient:
        """A new connection, not read from yet."""
        client = await LineClient.open(self.port)
        self.opened.append(client)
        return client

    async def greeted(self) -> tuple[LineClient, str]:
        """A client once greeted, and the name it was given."""
        client = await self.open()
        return client, await client.greeting()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def two_nodes(redis_server: RedisServer) -> AsyncIterator[Cluster]:
    """Nodes A (``--http``, the admin token ``TOKEN``) and B of a fresh cluster on the
    module's redis-server, for the module's tests."""
    started = Nodes()
    options = (
        *("--redis", redis_url(redis_server.port), "--cluster-name", fresh_cluster()),
        *("--max-clients", str(MAX_CLIENTS), "--resume-grace", "0", "--shutdown-timeout", "1"),
    )
    try:
        a, b = await asyncio.gather(
            started.start_node(*options, "--http", "0", env={"ACKCHAT_ADMIN_TOKEN": TOKEN}),
            started.start_node(*options),
        )
        port = int((await a.wait_for_log(DASHBOARD)).group(1))
        timeout = aiohttp.ClientTimeout(total=WAIT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield Cluster(a, b, f"http://127.0.0.1:{port}", session)
    finally:
        await started.stop_all()


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(two_nodes: Cluster) -> Cluster:
    """The module's cluster, once no client of an earlier test is connected to it and
    max_clients is 3 again."""
    await two_nodes.call("PATCH", "/api/config", {"max_clients": MAX_CLIENTS})

    async def empty() -> bool:
        connected: int = (await two_nodes.call("GET", "/api/status"))["connected"]
        return connected == 0

    await eventually(empty, "the clients of earlier tests have gone", interval=0.05)
    return two_nodes


@pytest_asyncio.fixture(loop_scope="module")
async def on_b(cluster: Cluster) -> AsyncIterator[TcpUsers]:
    """Line clients of node B; every one is closed after the test."""
    users = TcpUsers(cluster.b.port)
    yield users
    for client in users.opened:
        client.close()


def node_id(node: ServerProcess) -> str:
    """The name a node gives itself in its cluster when not told one."""
    return f"127.0.0.1:{node.port}"


async def test_three_tcp_clients_of_node_b_are_shown_on_node_a_within_a_second(
    cluster: Cluster, on_b: TcpUsers, shared_pages: Pages
) -> None:
    page = await dashboard(shared_pages, cluster.url)
    clients = [await on_b.greeted() for _ in range(3)]
    rows = page.locator("#client-rows tr")
    await expect(rows).to_have_count(3, timeout=OTHER_NODE_SHOWN_WITHIN)
    for index, (client, name) in enumerate(clients):
        cells = rows.nth(index).locator("td")
        await expect(cells.nth(0)).to_have_text(name)
        await expect(cells.nth(1)).to_have_text(f"127.0.0.1:{client.local_port}")
        await expect(cells.nth(2)).to_have_text(node_id(cluster.b))
        # Only node B knows how long its clients have been idle.
        await expect(cells.nth(4)).to_have_text(NOT_KNOWN)
    await expect(page.locator("#connected")).to_have_text("3")
    await expect(page.locator("#max-clients-now")).to_have_text("3")


async def test_the_page_on_node_a_kicks_a_client_of_node_b_which_sees_why(
    cluster: Cluster, on_b: TcpUsers, shared_pages: Pages
) -> None:
    clients = [await on_b.greeted() for _ in range(3)]
    kicked, name = clients[1]
    page = await dashboard(shared_pages, cluster.url)
    kick = page.locator(f'#client-rows tr[data-name="{name}"] button')
    await kick.click()
    await expect(page.locator("#result")).to_have_text("Enter the admin token first.")
    await page.fill("#token", TOKEN)
    await page.click("#token-form button")
    await kick.click()
    await expect(page.locator("#result")).to_have_text(f"Kicked {name}.")
    assert await kicked.read_line() == replies.KICKED
    assert await kicked.at_eof()
    await expect(page.locator("#client-rows tr")).to_have_count(2, timeout=SHOWN_WITHIN)
    await expect(page.locator("#departure-list li").first).to_have_text(
        re.compile(rf"\d\d:\d\d:\d\d {name} kicked")
    )


async def test_the_page_on_node_a_raises_max_clients_and_node_b_admits_a_fourth(
    cluster: Cluster, on_b: TcpUsers, shared_pages: Pages
) -> None:
    for _ in range(3):
        await on_b.greeted()
    turned_away = await on_b.open()
    assert await turned_away.read_line() == replies.SERVER_FULL
    page = await dashboard(shared_pages, cluster.url, TOKEN)
    await expect(page.locator("#max-clients")).to_have_value("3")
    await page.fill("#max-clients", "4")
    await page.click("#max-form button")
    await expect(page.locator("#result")).to_have_text("max_clients 3 → 4")
    fourth, name = await on_b.greeted()
    row = page.locator(f'#client-rows tr[data-name="{name}"]')
    await expect(row.locator("td").nth(2)).to_have_text(node_id(cluster.b), timeout=SHOWN_WITHIN)
    await expect(page.locator("#client-rows tr")).to_have_count(4)
    await expect(page.locator("#max-clients-now")).to_have_text("4")
    assert await fourth.ask("hello") == "hello ACK"


async def test_a_browser_user_on_node_a_and_a_netcat_user_on_node_b_exchange_messages(
    cluster: Cluster, on_b: TcpUsers, shared_pages: Pages
) -> None:
    page = await chat(shared_pages, cluster.url, "webber")
    nc = await renamed(await on_b.open(), "netty")
    await exchange_direct_and_room_messages(page, nc)


async def test_markup_between_the_nodes_is_shown_as_text_and_never_run_on_both_pages(
    cluster: Cluster, on_b: TcpUsers, shared_pages: Pages
) -> None:
    page = await chat(shared_pages, cluster.url, "webber")
    nc = await renamed(await on_b.open(), "netty")
    await markup_is_shown_as_text_on_both_pages(shared_pages, cluster.url, page, nc, "gallery")


async def test_while_redis_is_unreachable_the_dashboard_says_how_old_its_view_is(
    cluster: Cluster, on_b: TcpUsers, shared_pages: Pages, redis_server: RedisServer
) -> None:
    _, name = await on_b.greeted()
    page = await dashboard(shared_pages, cluster.url)
    await expect(page.locator("#client-rows tr")).to_have_count(1, timeout=SHOWN_WITHIN)
    await asyncio.to_thread(redis_server.shut_down, True)
    try:
        await expect(page.locator("#live")).to_have_text(UNAVAILABLE, timeout=SHOWN_WITHIN)
        await expect(page.locator("#updated")).to_have_text(
            re.compile(r"as of \d\d:\d\d:\d\d \(Redis unreachable\)")
        )
        await expect(page.locator("body")).to_have_class(re.compile(r"\bstale\b"))
        # What the page showed last stays, marked as old.
        await expect(page.locator("#client-rows tr").first.locator("td").first).to_have_text(name)
    finally:
        await asyncio.to_thread(redis_server.start_again)
    await expect(page.locator("#live")).to_have_text("live", timeout=SHOWN_WITHIN)
    await expect(page.locator("#updated")).to_have_text(re.compile(r"updated \d\d:\d\d:\d\d"))
    await expect(page.locator("body")).not_to_have_class(re.compile(r"\bstale\b"))
