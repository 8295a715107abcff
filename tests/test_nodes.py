"""Several server processes as the nodes of one service: sharing a port with
``--reuse-port``, and behind HAProxy configured as docs/CLUSTER.md says.

In embedded mode every node numbers its own clients from ``Client01``, and its
``status`` shows its own ``max_clients``: the tests tell nodes apart by those.
"""

from __future__ import annotations

import re
import signal
from collections import Counter

import pytest

from conftest import ProxyFactory
from lineclient import LineClient, eventually
from nodes import Nodes

# Each node is a process of its own: a second event loop in the tests adds nothing.
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

NOTICE = "Server draining: please reconnect."
# Connections tried before concluding that the kernel never picks a second node; each
# lands on one of two nodes, so all of them landing on one has odds of 2 ** -199.
REUSE_PORT_TRIES = 200


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_nodes_with_reuse_port_share_one_port_and_both_accept(
    loop: str, nodes: Nodes
) -> None:
    first, second = await nodes.start_sharing(2, "--loop", loop)
    assert first.port == second.port
    firsts = 0
    for _ in range(REUSE_PORT_TRIES):
        client = await LineClient.open(first.port)
        name = await client.greeting()
        assert await client.ask("exit") == f"Goodbye, {name}."
        client.close()
        # Each node names its own first client Client01: a second one is the other node's.
        firsts += name == "Client01"
        if firsts == 2:
            break
    assert firsts == 2, "every connection went to the same node"
    # One of them drained, the other takes every new connection.
    nodes.signal(0, signal.SIGUSR1)
    assert await first.wait() == 0
    for _ in range(3):
        client = await LineClient.open(second.port)
        await client.greeting()
        assert await client.ask("hello") == "hello ACK"
        client.close()


async def test_without_reuse_port_a_second_node_cannot_take_the_port(nodes: Nodes) -> None:
    first = await nodes.start_node()
    with pytest.raises(AssertionError, match="already in use"):
        await nodes.start_node(port=first.port)


async def node_of(client: LineClient) -> int:
    """Which node ``client`` is on: the ``max_clients`` its ``status`` shows."""
    header = (await client.status())[0]
    match = re.match(r"status: \d+ of (\d+) clients connected", header)
    assert match is not None, header
    return int(match.group(1))


async def through(port: int, text: str) -> tuple[LineClient, int]:
    """A client connected through HAProxy, greeted and acknowledged; and its node."""
    client = await LineClient.open(port)
    await client.greeting()
    assert await client.ask(text) == f"{text} ACK"
    return client, await node_of(client)


LIMITS = (10, 11, 12)


async def three_nodes(nodes: Nodes) -> None:
    """Three nodes, told apart by their ``max_clients``: 10, 11 and 12."""
    await nodes.start_each(*(("--max-clients", str(limit)) for limit in LIMITS))


async def test_haproxy_spreads_line_clients_over_three_nodes_and_skips_a_dead_one(
    nodes: Nodes, haproxy: ProxyFactory
) -> None:
    await three_nodes(nodes)
    proxy = await haproxy(nodes.ports)
    clients = []
    landed: Counter[int] = Counter()
    for number in range(6):
        client, node = await through(proxy.port, f"hello {number}")
        clients.append((client, node))
        landed[node] += 1
    assert set(landed) == set(LIMITS), landed

    nodes.signal(1, signal.SIGKILL)
    assert await nodes[1].wait() == -signal.SIGKILL
    for client, node in clients:
        if node == LIMITS[1]:
            assert await client.at_eof()
    for number in range(4):
        client, node = await through(proxy.port, f"after {number}")
        assert node != LIMITS[1]
        clients.append((client, node))
    for client, node in clients:
        if node != LIMITS[1]:
            assert (await client.ask("exit")).startswith("Goodbye, Client")
        client.close()


async def test_a_node_drained_behind_haproxy_sends_its_clients_to_the_others(
    nodes: Nodes, haproxy: ProxyFactory
) -> None:
    await three_nodes(nodes)
    proxy = await haproxy(nodes.ports)
    on_node: dict[int, list[LineClient]] = {limit: [] for limit in LIMITS}
    for number in range(6):
        client, node = await through(proxy.port, f"hello {number}")
        on_node[node].append(client)
    drained = on_node[LIMITS[0]]
    assert drained, on_node

    nodes.signal(0, signal.SIGUSR1)
    for client in drained:
        assert await client.reply() == NOTICE
        client.close()
    assert await nodes[0].wait() == 0
    # The drained clients come back through HAProxy, as `ackchat connect` would.
    for number in range(len(drained)):
        client, node = await through(proxy.port, f"back {number}")
        assert node != LIMITS[0]
        client.close()

    async def marked_down() -> bool:
        return b"node1 is DOWN" in proxy.output

    await eventually(marked_down, "HAProxy took the drained node out")
    for clients in on_node.values():
        for client in clients:
            client.close()
