"""The server's run as a process (server/runner.py), driven in this process: the hook
that runs once it serves (run_server freezes the start-up heap there)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

from ackchat.server.assembly import ChatServer
from ackchat.server.runner import EXIT_OK, serve
from ackchat.settings import Loaded, ServerSettings
from conftest import TEST_SETTINGS


def no_reload() -> Loaded[ServerSettings]:
    raise AssertionError("nothing sends SIGHUP in this test")


async def test_serving_is_called_once_the_server_accepts_connections() -> None:
    server = ChatServer(TEST_SETTINGS)
    accepted_on: list[int] = []

    def serving() -> None:
        # The kernel completes the connection: the server listens by now.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            accepted_on.append(server.port)
        os.kill(os.getpid(), signal.SIGINT)

    # Without the call, nothing would stop the server: the bound fails the test instead.
    async with asyncio.timeout(10):
        assert await serve(server, no_reload, None, serving) == EXIT_OK
    assert accepted_on == [server.port]
