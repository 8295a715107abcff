"""``GET /ws`` over real sockets: the line protocol in WebSocket frames, under the same
session as TCP (names, limits, chat, kicks, shutdown, drains, resume, slow readers), and
refused from another origin's page."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

from ackchat.protocol import replies
from ackchat.records import DisconnectReason
from adminhttp import AdminFactory, AdminUnderTest, admin_api
from conftest import ClientFactory, snapshot
from lineclient import bounded, eventually
from wsclient import WebSocketLines

__all__ = ["admin_api"]  # The fixture, imported to be used here.


async def websocket(admin: AdminUnderTest, origin: str | None = None) -> WebSocketLines:
    """A WebSocket client of the admin side's ``/ws``."""
    return await WebSocketLines.open(admin.session, admin.url + "/ws", origin)


async def test_a_line_is_a_frame_each_way_and_the_session_is_the_tcp_one(
    admin_api: AdminFactory,
) -> None:
    admin = await admin_api()
    client = await websocket(admin)
    block = await client.read_block()
    assert block[0] == "Welcome! You are Client01."
    assert block[1] == replies.GREETING_HELP
    assert block[2].startswith(replies.RESUME_PREFIX)
    assert await client.ask("Hello, Server!") == "Hello, Server! ACK"
    assert await client.ask("") == " ACK"
    # Line ends inside a frame make several lines; one at its end may be left out or not.
    await client.send("one\ntwo\n")
    assert [await client.read_line(), await client.read_line()] == ["one ACK", "two ACK"]
    await client.send("status")
    status = await client.read_block()
    assert status[0].startswith("status: 1 of 3 clients connected")
    assert status[1].startswith("Client01 127.0.0.1:")
    assert await client.ask("x" * 70_000) == (
        "ERROR line too long: 70000 bytes, the limit is 65536; the line was discarded."
    )
    assert await client.ask("exit") == "Goodbye, Client01."
    assert await client.close_code() == 1000
    (record,) = snapshot(admin.server).sessions
    assert record.reason is DisconnectReason.EXIT


async def test_websocket_and_tcp_clients_share_max_clients(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api(max_clients=2)
    tcp = await connect(admin.server)
    await tcp.greeting()
    first = await websocket(admin)
    assert await first.greeting() == "Client02"
    full = await websocket(admin)
    assert await full.read_line() == replies.SERVER_FULL
    assert await full.close_code() == 1000
    late = await connect(admin.server)
    assert await late.read_line() == replies.SERVER_FULL
    await first.send("exit")
    await first.reply()
    await first.close_code()
    again = await websocket(admin)
    assert await again.greeting() == "Client03"


async def test_a_websocket_user_and_a_tcp_user_chat_directly_and_in_a_room(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api()
    web = await websocket(admin)
    await web.greeting()
    assert await web.ask("/nick webber") == "You are now webber."
    tcp = await connect(admin.server)
    await tcp.greeting()
    assert await tcp.ask("/nick netty") == "You are now netty."
    assert await web.ask("/msg netty hello <b>there</b>") == "/msg netty hello <b>there</b> ACK"
    assert (await tcp.read_line()).endswith(" direct webber>netty: hello <b>there</b>")
    assert await tcp.ask("/msg webber hi\x1b[2J") == "/msg webber hi\x1b[2J ACK"
    assert (await web.read_line()).endswith(" direct netty>webber: hi\N{REPLACEMENT CHARACTER}[2J")
    await web.send("/join lobby")
    assert (await web.read_block())[0] == "joined #lobby: 1 member"
    await tcp.send("/join lobby")
    assert (await tcp.reply_block())[0] == "joined #lobby: 2 members"
    assert (await web.read_line()).endswith(" #lobby *: netty joined")
    assert await tcp.ask("/say lobby hi room") == "/say lobby hi room ACK"
    assert (await web.read_line()).endswith(" #lobby netty: hi room")
    assert await web.ask("/say lobby and back") == "/say lobby and back ACK"
    assert (await tcp.read_line()).endswith(" #lobby webber: and back")


async def test_a_kick_a_shutdown_and_a_drain_reach_websocket_clients(
    admin_api: AdminFactory,
) -> None:
    admin = await admin_api(drain_timeout=5.0)
    kicked = await websocket(admin)
    await kicked.greeting()
    staying = await websocket(admin)
    await staying.greeting()
    status, body = await admin.call("DELETE", "/api/clients/Client01")
    assert (status, body) == (200, {"kicked": "Client01"})
    assert await kicked.read_line() == replies.KICKED
    assert await kicked.close_code() == 1000
    assert snapshot(admin.server).sessions[0].reason is DisconnectReason.KICKED
    assert (await admin.call("POST", "/api/drain"))[0] == 202
    assert await staying.read_line() == "Server draining: please reconnect."
    async with admin.session.get(admin.url + "/ws") as refused:
        assert refused.status == 503
        assert await refused.json() == {
            "error": "the server is draining or stopping; connect to another",
            "field": None,
        }
    shutting = asyncio.ensure_future(admin.server.shutdown())
    assert await staying.read_line() == replies.SERVER_SHUTTING_DOWN
    assert await staying.close_code() == 1000
    await bounded(shutting, 2.0)
    assert snapshot(admin.server).sessions[1].reason is DisconnectReason.DRAINED


async def test_a_lost_websocket_is_held_and_resumed_over_tcp(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api()
    web = await websocket(admin)
    block = await web.read_block()
    token = block[2].removeprefix(replies.RESUME_PREFIX)
    assert await web.ask("/nick webber") == "You are now webber."
    await web.send("/join lobby")
    await web.read_block()
    await web.close()
    tcp = await connect(admin.server)
    await tcp.greeting()
    await tcp.send(f"/resume {token}")
    assert (await tcp.read_block())[0] == (
        "Resumed: you are webber again in #lobby; 0 missed messages follow"
    )
    assert snapshot(admin.server).sessions[0].reason is DisconnectReason.CLOSED_BY_PEER


async def test_the_password_applies_to_websocket_clients(admin_api: AdminFactory) -> None:
    admin = await admin_api(password="hunter2", auth_delay=0.0)
    client = await websocket(admin)
    assert await client.read_line() == replies.AUTH_REQUIRED
    assert await client.ask("hello") == replies.AUTH_FIRST
    assert await client.ask("auth wrong") == "ERROR wrong password (attempt 1 of 3)."
    await client.send("auth hunter2")
    assert await client.greeting() == "Client01"


async def test_a_websocket_from_another_origin_is_refused(admin_api: AdminFactory) -> None:
    admin = await admin_api()
    async with admin.session.get(
        admin.url + "/ws", headers={"Origin": "http://evil.example"}
    ) as refused:
        assert refused.status == 403
        assert (await refused.json())["error"] == (
            "a WebSocket from another origin's page is refused"
        )
    own = await websocket(admin, origin=admin.url)
    assert await own.greeting() == "Client01"
    async with admin.session.get(admin.url + "/ws") as plain:
        assert plain.status == 400
        assert (await plain.json())["error"] == (
            "GET /ws is a WebSocket: an upgrade request was expected"
        )


async def test_a_websocket_reader_that_stops_reading_is_cut_off_as_a_slow_consumer(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api(queue_warn=50, queue_limit=100, max_output_bytes=16 * 1024)
    loop = asyncio.get_running_loop()
    # A browser that never reads: a small receive buffer, and nothing read after the upgrade.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.setblocking(False)
    try:
        await bounded(loop.sock_connect(stuck, ("127.0.0.1", admin.http.port)))
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{admin.http.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await bounded(loop.sock_sendall(stuck, upgrade.encode()))

        async def named() -> bool:
            return any(record.name == "Client01" for record in snapshot(admin.server).sessions)

        await eventually(named, "the stuck WebSocket client has a name")
        sender = await connect(admin.server)
        await sender.greeting()
        batch = f"/msg Client01 {'x' * 8000}\n".encode() * 20

        async def cut_off() -> bool:
            # The kernel's buffers take megabytes before the server's queue grows.
            if snapshot(admin.server).sessions[0].reason is DisconnectReason.SLOW_CONSUMER:
                return True
            await sender.send_raw(batch)
            return False

        await eventually(cut_off, "the stuck WebSocket client is cut off")
    finally:
        stuck.close()
