"""Connection storms and address policy: refused quickly, connected clients still served."""

from __future__ import annotations

import asyncio

from conftest import ClientFactory, ServerFactory, snapshot
from lineclient import LineClient, bounded


async def test_a_storm_beyond_the_limit_is_rejected_while_clients_are_served(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_clients=1)
    member = await connect(server)
    await member.greeting()
    outcomes: list[str] = []

    async def storm(count: int) -> None:
        for _ in range(count):
            reader, writer = await bounded(asyncio.open_connection("127.0.0.1", server.port))
            first = await bounded(reader.readline())
            outcomes.append(first.decode().rstrip("\n"))
            writer.close()

    async def chat() -> list[str]:
        return [await member.ask(f"during storm {n}") for n in range(200)]

    storms = [storm(250) for _ in range(8)]
    answers, *_ = await bounded(asyncio.gather(chat(), *storms), 60)
    assert answers == [f"during storm {n} ACK" for n in range(200)]
    assert len(outcomes) == 2000
    assert outcomes == ["Server is full. Try again later."] * 2000
    assert snapshot(server).rejected == 2000


async def test_too_many_connections_from_one_address(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_clients=10, max_per_address=2, limit_exempt=())
    clients = [await connect(server) for _ in range(2)]
    for client in clients:
        await client.greeting()
    third = await connect(server)
    assert await third.read_line() == (
        "Connection refused: too many connections from this address. Try again later."
    )
    assert await third.at_eof()
    clients[0].close()
    await clients[0].writer.wait_closed()

    async def admitted() -> LineClient | None:
        client = await connect(server)
        first = await client.read_line()
        return client if first.startswith("Welcome!") else None

    retry = None
    for _ in range(100):
        retry = await admitted()
        if retry is not None:
            break
    assert retry is not None, "the slot freed by the closed client never came back"
    header = (await clients[1].status())[0]
    assert "refused: " in header
    assert "too many connections from this address" in header


async def test_connecting_too_fast_from_one_address(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(
        max_clients=50, connect_rate=0.001, connect_burst=3, limit_exempt=()
    )
    first_lines = []
    for _ in range(5):
        client = await connect(server)
        first_lines.append(await client.read_line())
    assert [text.startswith("Welcome!") for text in first_lines] == [True] * 3 + [False] * 2
    assert first_lines[3] == (
        "Connection refused: connecting too fast from this address. Try again later."
    )


async def test_loopback_is_exempt_from_per_address_limits_by_default(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_clients=30, max_per_address=2, connect_burst=2)
    for _ in range(20):
        assert (await (await connect(server)).greeting()).startswith("Client")


async def test_deny_list(start_server: ServerFactory, connect: ClientFactory) -> None:
    server = await start_server(deny=("127.0.0.0/8",))
    client = await connect(server)
    assert await client.read_line() == "Connection refused: address not allowed. Try again later."
    assert await client.at_eof()
    assert snapshot(server).seen == 0


async def test_allow_list_admits_only_its_networks(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    outside = await start_server(allow=("10.0.0.0/8", "::1"))
    client = await connect(outside)
    assert await client.read_line() == "Connection refused: address not allowed. Try again later."
    inside = await start_server(allow=("127.0.0.1/32",))
    assert await (await connect(inside)).greeting() == "Client01"
