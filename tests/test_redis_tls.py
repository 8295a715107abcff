"""Cluster mode over TLS: nodes reach a redis-server that speaks only TLS on the port they
are given (its certificate from the tests' trustme CA) and asks for a password, with
``rediss://:<password>@127.0.0.1:<port>/0`` and the CA.

The CA goes in the URL, as ``?ssl_ca_certs=<path>``: redis-py reads its connection
options from the URL's query, and ackchat has no setting of its own for it. The URL is
given in ``ACKCHAT_REDIS``, which keeps the password out of ``ps``; it must not reach
the log either, and a node that cannot verify the server or has the wrong password
exits with one sentence and code 1.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import NamedTuple
from urllib.parse import quote

import pytest
import redis

from backends import fresh_cluster
from lineclient import WAIT, LineClient
from nodes import Nodes
from redisserver import RedisServer, free_port, redis_binary
from serverprocess import ROOT


class TlsRedis(NamedTuple):
    """A redis-server with a TLS port and a password, and the CA that signed it."""

    server: RedisServer
    tls_port: int
    password: str
    ca: str

    def url(self, password: str | None = None, *, with_ca: bool = True) -> str:
        """The URL of its TLS port, with its password (or ``password``) and its CA."""
        secret = self.password if password is None else password
        query = f"?ssl_ca_certs={quote(self.ca)}" if with_ca else ""
        return f"rediss://:{secret}@127.0.0.1:{self.tls_port}/0{query}"


@pytest.fixture
def tls_redis(tls_files: tuple[str, str, str]) -> Iterator[TlsRedis]:
    """A redis-server whose TLS port has a certificate for 127.0.0.1 from the tests' CA.

    Its plain port is for the readiness poll (tests/redisserver.py); once it answers,
    the password is set, and every client must give it from then on.
    """
    cert, key, ca = tls_files
    tls_port = free_port()
    server = RedisServer.start(
        redis_binary(),
        *("--tls-port", str(tls_port), "--tls-auth-clients", "no"),
        *("--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca),
    )
    try:
        password = secrets.token_hex(12)
        with redis.Redis(port=server.port) as admin:
            admin.config_set("requirepass", password)
        yield TlsRedis(server, tls_port, password, ca)
    finally:
        server.stop()


# Each node is a process of its own: a second event loop in the test adds nothing.
@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_nodes_reach_a_tls_redis_with_a_password_in_the_url_and_a_ca(
    nodes: Nodes, tls_redis: TlsRedis
) -> None:
    env = {"ACKCHAT_REDIS": tls_redis.url()}
    first, second = await nodes.start(2, "--cluster-name", fresh_cluster(), env=env)
    clients: list[LineClient] = []
    try:
        for node in (first, second):
            clients.append(await LineClient.open(node.port))
            await clients[-1].greeting()
        ann, bob = clients
        assert await ann.ask("/nick Ann") == "You are now Ann."
        assert await bob.ask("/msg ann over TLS") == "/msg ann over TLS ACK"
        assert (await ann.read_line()).endswith(" direct Client02>Ann: over TLS")
        status = await bob.status()
        assert status[0].startswith("status: 2 of 3 clients connected, 2 seen")
    finally:
        for client in clients:
            client.close()
    assert await nodes.stop_all() == [0, 0]
    for node in (first, second):
        assert not [line for line in node.log if tls_redis.password in line]


def serve_until_exit(url: str) -> subprocess.CompletedProcess[str]:
    """Run a node with ``ACKCHAT_REDIS=url`` that is expected to exit at start."""
    return subprocess.run(
        [sys.executable, "-m", "ackchat", "serve", "--port", "0"],
        env={**os.environ, "ACKCHAT_REDIS": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )


@pytest.mark.parametrize(
    ("url_of", "reason"),
    [
        pytest.param(
            lambda server: server.url(with_ca=False), "certificate verify failed", id="no-ca"
        ),
        pytest.param(
            lambda server: server.url("not-" + server.password), "invalid", id="wrong-password"
        ),
    ],
)
def test_a_node_that_cannot_verify_redis_or_log_in_exits_with_one_sentence(
    tls_redis: TlsRedis, url_of: Callable[[TlsRedis], str], reason: str
) -> None:
    done = serve_until_exit(url_of(tls_redis))
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"cannot reach Redis at 127.0.0.1:{tls_redis.tls_port}/0: " in line
    assert reason in line
    assert tls_redis.password not in line
