"""Junk input and broken peers: binary, NUL bytes, resets mid-write, closes mid-reply."""

from __future__ import annotations

import os

from ackchat.records import DisconnectReason
from conftest import ClientFactory, ServerFactory, add_departed, snapshot
from lineclient import eventually


async def test_binary_junk_gets_errors_and_the_session_goes_on(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_line_bytes=4096)
    client = await connect(server)
    await client.greeting()
    junk = bytes(range(256)) * 64 + os.urandom(20_000)
    await client.send_raw(junk + b"\nafter junk\n")
    replies = []
    while (text := await client.read_line()) != "after junk ACK":
        replies.append(text)
    assert replies, "the junk got no answer at all"
    assert all(text.startswith("ERROR ") or text.endswith(" ACK") for text in replies)
    assert await client.ask("still here") == "still here ACK"


async def test_nul_bytes_are_ordinary_text(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server()
    client = await connect(server)
    await client.greeting()
    assert await client.ask("a\x00b") == "a\x00b ACK"


async def test_a_reset_in_the_middle_of_a_write_costs_only_that_client(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_output_bytes=2**30, rate_limit=0)
    victim = await connect(server)
    await victim.greeting()
    await victim.send_raw(b"help\n" * 50_000)
    victim.reset()
    watcher = await connect(server)
    await watcher.greeting()

    async def victim_gone() -> bool:
        sessions = snapshot(server).sessions
        return sessions[0].disconnected_at is not None

    await eventually(victim_gone, "the reset client is recorded as gone")
    reason = snapshot(server).sessions[0].reason
    assert reason in (DisconnectReason.RESET, DisconnectReason.CONNECTION_ERROR)
    assert await watcher.ask("fine") == "fine ACK"


async def test_a_peer_closing_during_a_long_reply(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(history_limit=50_000)
    for number in range(50_000):
        add_departed(server, f"192.0.2.7:{number}")
    leaver = await connect(server)
    await leaver.greeting()
    await leaver.send("status all")
    await leaver.read_line()
    leaver.close()
    watcher = await connect(server)
    await watcher.greeting()

    async def leaver_gone() -> bool:
        return snapshot(server).connected == 1

    await eventually(leaver_gone, "the client that left mid-reply is recorded as gone")
    assert server.open_connections == 1
    assert await watcher.ask("fine") == "fine ACK"
