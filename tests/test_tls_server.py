"""TLS on the client port, and on a separate port beside the plain one."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from pathlib import Path

import pytest
import trustme

from ackchat.server.assembly import ChatServer
from ackchat.tls import client_context
from conftest import ServerFactory, snapshot
from lineclient import LineClient, bounded


async def open_tls(port: int, context: ssl.SSLContext) -> LineClient:
    reader, writer = await bounded(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    )
    return LineClient(reader, writer)


async def test_tls_on_the_main_port(
    start_server: ServerFactory, tls_files: tuple[str, str, str]
) -> None:
    cert, key, ca = tls_files
    server = await start_server(tls_cert=cert, tls_key=key)
    client = await open_tls(server.port, client_context(ca, insecure=False))
    assert await client.greeting() == "Client01"
    assert await client.ask("secret hello") == "secret hello ACK"
    lines = await client.status()
    assert lines[1].startswith("Client01 127.0.0.1:")
    assert await client.ask("exit") == "Goodbye, Client01."
    client.close()


async def test_plain_text_on_a_tls_port_gets_nowhere(
    start_server: ServerFactory, tls_files: tuple[str, str, str]
) -> None:
    cert, key, _ = tls_files
    server = await start_server(tls_cert=cert, tls_key=key)
    plain = await LineClient.open(server.port)
    await plain.send("hello")
    assert await plain.at_eof()
    assert snapshot(server).seen == 0


async def test_a_client_that_does_not_trust_the_certificate_refuses_it(
    start_server: ServerFactory, tls_files: tuple[str, str, str]
) -> None:
    cert, key, _ = tls_files
    server = await start_server(tls_cert=cert, tls_key=key)
    stranger = trustme.CA()
    context = ssl.create_default_context()
    stranger.configure_trust(context)
    with pytest.raises(ssl.SSLCertVerificationError):
        await open_tls(server.port, context)
    insecure = await open_tls(server.port, client_context(None, insecure=True))
    assert await insecure.greeting() == "Client01"
    insecure.close()


async def test_a_tls_port_beside_the_plain_one(
    start_server: ServerFactory, tls_files: tuple[str, str, str]
) -> None:
    cert, key, ca = tls_files
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    server: ChatServer = await start_server(tls_cert=cert, tls_key=key, tls_port=free_port)
    assert server.tls_port == free_port
    plain = await LineClient.open(server.port)
    assert await plain.greeting() == "Client01"
    secure = await open_tls(free_port, client_context(ca, insecure=False))
    assert await secure.greeting() == "Client02"
    assert await secure.ask("over tls") == "over tls ACK"
    assert await plain.ask("in the clear") == "in the clear ACK"
    plain.close()
    secure.close()


async def test_bad_tls_files_stop_the_server_with_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ackchat", "serve", "--port", "0",
        "--tls-cert", missing, "--tls-key", missing,
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, error = await bounded(process.communicate())
    assert process.returncode == 2
    lines = error.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ackchat: cannot load the TLS certificate chain from")
    assert "missing.pem" in lines[0]
