"""Who sees client addresses in status, and keepalive tuning for half-open peers."""

from __future__ import annotations

import socket

import pytest

from ackchat.admission import is_loopback
from conftest import ClientFactory, ServerFactory


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2001:db8::1", False),
        ("fe80::1%eth0", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("visibility", "shown"), [("loopback", True), ("all", True), ("none", False)]
)
async def test_status_addresses_follow_the_setting(
    start_server: ServerFactory, connect: ClientFactory, visibility: str, shown: bool
) -> None:
    server = await start_server(show_addresses=visibility)
    client = await connect(server)
    await client.greeting()
    line = (await client.status())[1]
    assert line.startswith("Client01 127.0.0.1:" if shown else "Client01 - connected")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, (60, 10, 5)),
        ({"keepalive_idle": 7, "keepalive_interval": 3, "keepalive_count": 2}, (7, 3, 2)),
    ],
)
async def test_keepalive_settings_reach_accepted_sockets(
    start_server: ServerFactory,
    connect: ClientFactory,
    overrides: dict[str, int],
    expected: tuple[int, int, int],
) -> None:
    server = await start_server(**overrides)
    client = await connect(server)
    await client.greeting()
    (connection,) = server.connections
    assert connection.transport is not None
    sock = connection.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    idle, interval, count = expected
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == idle
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == interval
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == count


async def test_keepalive_can_be_turned_off(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(keepalive=False)
    client = await connect(server)
    await client.greeting()
    (connection,) = server.connections
    assert connection.transport is not None
    sock = connection.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


async def test_serving_a_network_without_tls_or_password_is_warned_about(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    await start_server(host="0.0.0.0")
    assert "without TLS or a password" in caplog.text


async def test_serving_loopback_or_with_a_password_is_not_warned_about(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    await start_server()
    await start_server(host="0.0.0.0", password="secret")
    assert "without TLS or a password" not in caplog.text
