"""Shared fixtures: a real server on 127.0.0.1 with an ephemeral port, line clients, server
processes as the nodes of one service, HAProxy in front of them, a redis-server and a
Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
import uvloop

from ackchat.backend.pending import Pending, Result
from ackchat.records import DisconnectReason, StatusSnapshot
from ackchat.server.assembly import ChatServer
from ackchat.settings import ServerSettings
from haproxyprocess import HAProxy, start_in_front_of
from lineclient import LineClient
from nodes import Nodes
from rediscluster import RedisCluster, redis_cli_binary
from redisserver import RedisServer, redis_binary

TEST_SETTINGS = ServerSettings(host="127.0.0.1", port=0, shutdown_timeout=2.0)

ServerFactory = Callable[..., Coroutine[Any, Any, ChatServer]]
ClientFactory = Callable[[ChatServer], Coroutine[Any, Any, LineClient]]


T = TypeVar("T")


def at_once(result: Result[T]) -> T:
    """A backend's answer that the memory backend gives at once."""
    assert not isinstance(result, Pending), "the memory backend answers at once"
    return result


def snapshot(server: ChatServer) -> StatusSnapshot:
    """The server's whole cache, as ``status all`` shows it."""
    return at_once(server.backend.snapshot(None))


class Nobody:
    """A chat peer that drops what it is sent: for sessions made without a connection."""

    def deliver(self, data: bytes) -> None:
        """Nothing reads it."""


def add_departed(server: ChatServer, address: str) -> None:
    """Put a client that came and left (``exit``) in the server's cache."""
    admitted = at_once(server.backend.admit(address, Nobody()))
    assert admitted is not None
    at_once(server.backend.depart(admitted.record.name, DisconnectReason.EXIT, hold=False))


LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LOOPS: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, LoopFactory]:
    """Run every async test on both event loops the server supports."""
    return LOOPS


@pytest.fixture(scope="session")
def authority() -> trustme.CA:
    """A certificate authority for the tests' TLS certificates."""
    return trustme.CA()


@pytest.fixture
def tls_files(tmp_path: Path, authority: trustme.CA) -> tuple[str, str, str]:
    """Certificate chain, key and CA file for a server on 127.0.0.1 (and localhost)."""
    issued = authority.issue_cert("localhost", "127.0.0.1")
    cert, key, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    return str(cert), str(key), str(ca)


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    """Start servers with settings overrides; every one is shut down after the test."""
    servers: list[ChatServer] = []

    async def start(**overrides: Any) -> ChatServer:
        server = ChatServer(replace(TEST_SETTINGS, **overrides))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.shutdown()


@pytest.fixture
async def server(start_server: ServerFactory) -> ChatServer:
    """A server with the default settings (3 clients) on an ephemeral port."""
    return await start_server()


@pytest.fixture
async def connect() -> AsyncIterator[ClientFactory]:
    """Open line clients to a server; every one is closed after the test."""
    clients: list[LineClient] = []

    async def open_client(server: ChatServer) -> LineClient:
        client = await LineClient.open(server.port)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    """``ackchat serve`` processes as the nodes of one service; all stopped after the test."""
    started = Nodes()
    yield started
    await started.stop_all()


ProxyFactory = Callable[[Sequence[int]], Coroutine[Any, Any, HAProxy]]


@pytest.fixture
async def haproxy(tmp_path: Path) -> AsyncIterator[ProxyFactory]:
    """Start HAProxy, configured as docs/CLUSTER.md says, in front of nodes on given ports;
    each is stopped after the test. Fails where haproxy is not installed (CI installs it)."""
    started: list[HAProxy] = []

    async def start(node_ports: Sequence[int]) -> HAProxy:
        proxy = await start_in_front_of(node_ports, tmp_path)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        await proxy.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free port of 127.0.0.1 for a module's tests, stopped after.

    Fails where redis-server is not installed: CI installs it (.ci/run).
    """
    server = RedisServer.start(redis_binary())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of three masters on free ports of 127.0.0.1 for a module's tests,
    stopped after. Fails where redis-server or redis-cli is not installed (CI installs
    them)."""
    cluster = RedisCluster.start(redis_binary(), redis_cli_binary())
    try:
        yield cluster
    finally:
        cluster.stop()
