"""The server end to end over real sockets on 127.0.0.1: the original's behaviour."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from dataclasses import replace
from datetime import datetime

import pytest

from ackchat.protocol import replies
from ackchat.records import DisconnectReason
from ackchat.registry import client_name
from ackchat.server.assembly import ChatServer
from ackchat.settings import ServerSettings
from conftest import ClientFactory, ServerFactory, add_departed, snapshot
from lineclient import LineClient, bounded, eventually, flood_without_reading

ISO_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"


async def status_line_of(client: LineClient, name: str, show_all: bool = False) -> str:
    lines = await client.status(show_all)
    matches = [text for text in lines if text.startswith(f"{name} ")]
    assert len(matches) == 1, lines
    return matches[0]


async def test_clients_are_named_in_order_and_told_their_name(
    server: ChatServer, connect: ClientFactory
) -> None:
    names = [await (await connect(server)).greeting() for _ in range(3)]
    assert names == ["Client01", "Client02", "Client03"]


async def test_names_are_never_reused(server: ChatServer, connect: ClientFactory) -> None:
    first = await connect(server)
    assert await first.greeting() == "Client01"
    assert await first.ask("exit") == "Goodbye, Client01."
    assert await first.at_eof()
    second = await connect(server)
    assert await second.greeting() == "Client02"


async def test_every_line_comes_back_with_ack(server: ChatServer, connect: ClientFactory) -> None:
    client = await connect(server)
    await client.greeting()
    assert await client.ask("Hello, Server!") == "Hello, Server! ACK"
    assert await client.ask("") == " ACK"
    assert await client.ask("  spaced  out  ") == "  spaced  out   ACK"
    assert await client.ask("héllo ✓") == "héllo ✓ ACK"


async def test_coalesced_split_and_crlf_lines(server: ChatServer, connect: ClientFactory) -> None:
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"one\ntwo\r\nthr")
    assert await client.read_line() == "one ACK"
    assert await client.read_line() == "two ACK"
    await client.send_raw(b"ee\r")
    await client.send_raw(b"\n")
    assert await client.read_line() == "three ACK"


async def test_status_shows_the_cache(server: ChatServer, connect: ClientFactory) -> None:
    gone = await connect(server)
    await gone.greeting()
    await gone.ask("exit")
    client = await connect(server)
    await client.greeting()
    lines = await client.status()
    assert lines[0] == (
        "status: 1 of 3 clients connected, 2 seen, 0 rejected (server full),"
        " 0 dropped from the cache"
    )
    assert re.fullmatch(
        rf"Client01 127\.0\.0\.1:{gone.local_port} connected ({ISO_TIME})"
        rf" disconnected ({ISO_TIME}) \(exit\)",
        lines[1],
    )
    match = re.fullmatch(
        rf"Client02 127\.0\.0\.1:{client.local_port} connected ({ISO_TIME}) still connected",
        lines[2],
    )
    assert match is not None
    connected_at = datetime.fromisoformat(match.group(1))
    assert abs(connected_at.timestamp() - datetime.now().timestamp()) < 60
    assert len(lines) == 3


async def test_exit_says_goodbye_records_and_closes(
    server: ChatServer, connect: ClientFactory
) -> None:
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"EXIT\nthis line is never answered\n")
    assert await client.read_line() == "Goodbye, Client01."
    assert await client.at_eof()
    other = await connect(server)
    await other.greeting()
    assert (await status_line_of(other, "Client01")).endswith("(exit)")


async def test_one_client_too_many_is_told_the_server_is_full(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_clients=2)
    for _ in range(2):
        await (await connect(server)).greeting()
    extra = await connect(server)
    assert await extra.read_line() == "Server is full. Try again later."
    assert await extra.at_eof()
    first = await connect(server)
    assert await first.read_line() == "Server is full. Try again later."
    assert snapshot(server).rejected == 2


async def test_a_vanished_client_frees_its_slot_at_once(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_clients=1)
    closer = await connect(server)
    await closer.greeting()
    closer.close()

    async def slot_is_free() -> bool:
        return snapshot(server).connected == 0

    await eventually(slot_is_free, "the closed client's slot is free")
    client = await connect(server)
    assert await client.greeting() == "Client02"
    assert (await status_line_of(client, "Client01")).endswith("(closed by peer)")


async def test_a_reset_is_recorded_as_a_reset(server: ChatServer, connect: ClientFactory) -> None:
    client = await connect(server)
    await client.greeting()
    client.reset()
    watcher = await connect(server)
    await watcher.greeting()

    async def recorded() -> bool:
        return "(reset)" in await status_line_of(watcher, "Client01")

    await eventually(recorded, "the reset is recorded")


async def test_invalid_utf8_gets_an_error_and_the_session_goes_on(
    server: ChatServer, connect: ClientFactory
) -> None:
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"bad \xff\xfe bytes\nfine\n")
    assert await client.read_line() == "ERROR invalid UTF-8: the line was discarded."
    assert await client.read_line() == "fine ACK"


async def test_an_overlong_line_is_discarded_with_an_error(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_line_bytes=1000)
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"x" * 5000)
    await client.send_raw(b"x" * 5000 + b"\nafter\n")
    assert await client.read_line() == (
        "ERROR line too long: 10000 bytes, the limit is 1000; the line was discarded."
    )
    assert await client.read_line() == "after ACK"
    assert await client.ask("x" * 1000) == "x" * 1000 + " ACK"


async def test_a_client_that_never_reads_is_disconnected(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_output_bytes=64 * 1024, rate_limit=0)
    sent = await flood_without_reading(server.port, b"flood\n" * 10_000, 50_000_000)
    assert sent < 50_000_000, "the server kept accepting input from a client that never reads"
    watcher = await connect(server)
    await watcher.greeting()
    assert (await status_line_of(watcher, "Client01")).endswith("(slow consumer)")


async def test_a_long_status_is_streamed_within_the_output_cap(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    # More than the kernel's socket buffers hold, so the reply must wait for the reader.
    entries = 60_000
    server = await start_server(max_output_bytes=8 * 1024, history_limit=entries)
    for number in range(entries):
        add_departed(server, f"192.0.2.1:{number}")
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"status all\nafter\n")
    lines = await client.read_block()
    assert len(lines) == 1 + entries + 1
    assert lines[1].startswith("Client01 192.0.2.1:0 ")
    assert lines[-1].endswith("still connected")
    assert await client.read_line() == "after ACK"
    short = await client.status()
    recent = server.settings.status_recent
    assert len(short) == 1 + recent + 1 + 1
    assert (
        short[-1]
        == f"{entries - recent} earlier departed clients not shown; send 'status all' to list them."
    )


async def test_the_cache_is_bounded_and_counts_what_it_dropped(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(history_limit=2)
    for _ in range(4):
        client = await connect(server)
        await client.greeting()
        await client.ask("exit")
    watcher = await connect(server)
    await watcher.greeting()
    lines = await watcher.status(show_all=True)
    assert lines[0].endswith("5 seen, 0 rejected (server full), 2 dropped from the cache")
    assert [text.split()[0] for text in lines[1:]] == ["Client03", "Client04", "Client05"]


async def test_an_idle_client_is_disconnected(
    start_server: ServerFactory, connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ackchat.server")
    server = await start_server(idle_timeout=0.3)
    client = await connect(server)
    await client.greeting()
    assert await client.ask("still here") == "still here ACK"
    assert await client.read_line() == "Idle timeout: no input for 0.3 seconds. Goodbye."
    assert await client.at_eof()
    assert "Client01 disconnected: no input for 0.3 seconds (idle timeout)" in caplog.messages
    watcher = await connect(server)
    await watcher.greeting()
    assert (await status_line_of(watcher, "Client01")).endswith("(idle timeout)")


async def test_shutdown_tells_every_client_and_records_it(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server()
    clients = [await connect(server) for _ in range(2)]
    for client in clients:
        await client.greeting()
    shutdown = asyncio.ensure_future(server.shutdown())
    for client in clients:
        assert await client.read_line() == "Server is shutting down. Goodbye."
        assert await client.at_eof()
        client.close()
    await bounded(shutdown)
    assert server.open_connections == 0
    reasons = {record.reason for record in snapshot(server).sessions}
    assert reasons == {DisconnectReason.SERVER_SHUTDOWN}


async def test_shutdown_is_bounded_when_a_client_never_reads(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(shutdown_timeout=0.2, max_output_bytes=2**30)
    stuck = socket.create_connection(("127.0.0.1", server.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        watcher = await connect(server)
        await watcher.greeting()
        # Status replies that the stuck client never reads fill its socket buffers.
        stuck.sendall(b"help\n" * 20_000)

        async def output_is_stuck() -> bool:
            stuck_connections = [c for c in server.connections if c.name == "Client01"]
            transport = stuck_connections[0].transport
            return transport is not None and transport.get_write_buffer_size() > 0

        await eventually(output_is_stuck, "the server has unsent output for the stuck client")
        await bounded(server.shutdown(), 5.0)
        assert server.open_connections == 0
    finally:
        stuck.close()


async def test_a_closed_connection_is_let_go_at_once(
    server: ChatServer, connect: ClientFactory
) -> None:
    client = await connect(server)
    await client.greeting()
    assert await client.ask("exit") == "Goodbye, Client01."
    assert await client.at_eof()
    assert server.closing_connections == 1
    client.close()

    async def closed() -> bool:
        return server.open_connections == 0

    await eventually(closed, "the server sees the connection closed")
    assert server.closing_connections == 0


async def test_a_peer_that_never_closes_its_end_is_cut_off(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(shutdown_timeout=0.2)
    client = await connect(server)
    await client.greeting()
    assert await client.ask("exit") == "Goodbye, Client01."
    assert await client.at_eof()

    async def cut_off() -> bool:
        return server.open_connections == 0 and server.closing_connections == 0

    await eventually(cut_off, "the server aborts the connection after the shutdown timeout")


async def test_status_lists_as_many_departed_clients_as_configured(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(status_recent=2)
    for _ in range(4):
        leaving = await connect(server)
        await leaving.greeting()
        await leaving.ask("exit")
    watcher = await connect(server)
    await watcher.greeting()
    lines = await watcher.status()
    assert [text.split()[0] for text in lines[1:4]] == ["Client03", "Client04", "Client05"]
    assert lines[4] == "2 earlier departed clients not shown; send 'status all' to list them."


async def test_status_shows_every_client_of_a_short_run_like_the_original(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server()
    assert server.settings.status_recent == ServerSettings().status_recent
    for _ in range(77):
        leaving = await connect(server)
        await leaving.greeting()
        await leaving.ask("exit")
    watcher = await connect(server)
    await watcher.greeting()
    lines = await watcher.status()
    names = [text.split()[0] for text in lines[1:]]
    assert names == [client_name(number) for number in range(1, 79)]
    assert lines[1].endswith("(exit)")


async def test_status_says_in_words_when_the_limit_was_lowered_below_the_count(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_clients=3)
    clients = [await connect(server) for _ in range(3)]
    for client in clients:
        await client.greeting()
    server.reconfigure(replace(server.settings, max_clients=2))
    header = (await clients[0].status())[0]
    assert header.startswith(
        "status: 3 clients connected, over the limit of 2 (it was lowered;"
        " no one is admitted until fewer than 2 are connected), 3 seen,"
    )
    await clients[2].ask("exit")
    assert (await clients[0].status())[0].startswith("status: 2 of 2 clients connected")


async def test_slash_spellings_of_the_command_words(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server()
    client = await connect(server)
    await client.greeting()
    await client.send("/help")
    assert await client.read_block() == ["help:", *replies.HELP_LINES]
    await client.send("/status")
    assert (await client.read_block())[0].startswith("status: 1 of 3 clients connected")
    assert await client.ask("quit") == "quit ACK"
    assert await client.ask("/quit") == "Goodbye, Client01."
    assert await client.at_eof()
