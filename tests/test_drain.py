"""Draining for rolling restarts (SIGUSR1): no new clients, the connected ones told to
reconnect, the process gone once they have left or after its bound; and the client,
which reconnects (to the address it is told of) and resumes.

Resuming on another server needs the state the two share. In embedded mode every process
has its own, so across processes the token is refused, and these tests check that the
client says so and goes on; the resume itself is tested with two servers in one process
over one backend, which is what cluster mode's shared Redis gives separate processes.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, cast

import pytest

from ackchat.backend.interface import Backend
from ackchat.backend.memory import MemoryBackend
from ackchat.backend.pending import Pending
from ackchat.client import EXIT_OK, EXIT_SERVER_CLOSED
from ackchat.client.chat import ChatClient
from ackchat.client.core import Draining, Event
from ackchat.client.errors import ServerDrainingError
from ackchat.client.piped import run_piped, run_send
from ackchat.client.session import configured_only
from ackchat.protocol import replies
from ackchat.server.assembly import ChatServer, memory_backend
from ackchat.settings import ClientSettings
from backends import DeferredBackend
from conftest import TEST_SETTINGS
from lineclient import LineClient, bounded, eventually
from nodes import Nodes
from test_client_chat import EVENT, Typing, named, next_matching, until_shown
from test_client_piped import WELCOME, ClientCommand, ackchat, shown
from test_client_security import Terminal

__all__ = ["ackchat"]  # The fixture, imported to be used here.

# Most of these run the server or the client as a process of its own, where a second
# event loop in the tests adds nothing; the ones that run both in process use both loops.
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])
both_loops = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

NOTICE = "Server draining: please reconnect."


async def test_sigusr1_refuses_new_clients_tells_each_and_exits_0_once_they_have_left(
    nodes: Nodes,
) -> None:
    node = await nodes.start_node("--log-level", "debug")
    clients = [await LineClient.open(node.port) for _ in range(2)]
    for client in clients:
        await client.greeting()
    node.send_signal(signal.SIGUSR1)
    for client in clients:
        assert await client.read_line() == NOTICE
    await node.wait_for_log(
        r"SIGUSR1 received: draining: accepting no more clients, telling 2 connections to"
        r" reconnect; waiting up to 30 seconds"
    )
    with pytest.raises(ConnectionRefusedError):
        await LineClient.open(node.port)
    # Until they go, the clients are served as before.
    assert await clients[0].ask("still here") == "still here ACK"
    clients[0].close()
    await node.wait_for_log(r"Client01 disconnected \(drained\)")
    assert node.process.returncode is None
    clients[1].close()
    assert await node.wait() == 0
    await node.wait_for_log(r"Client02 disconnected \(drained\)")
    await node.wait_for_log(r"drained: every client has left")
    await node.wait_for_log(r"server stopped")


async def test_a_drain_closes_the_clients_still_there_after_its_bound_and_exits_0(
    nodes: Nodes,
) -> None:
    node = await nodes.start_node(
        "--drain-timeout", "0.5", "--drain-redirect", "127.0.0.1:1235", "--log-level", "debug"
    )
    stays = await LineClient.open(node.port)
    await stays.greeting()
    loop = asyncio.get_running_loop()
    told_at = loop.time()
    node.send_signal(signal.SIGUSR1)
    assert await stays.read_line() == "Server draining: please reconnect to 127.0.0.1:1235."
    assert await stays.read_line() == replies.SERVER_SHUTTING_DOWN
    assert loop.time() - told_at >= 0.5
    assert await stays.at_eof()
    stays.close()
    assert await node.wait() == 0
    await node.wait_for_log(r"drain timeout: 1 connections still open after 0.5 seconds")
    await node.wait_for_log(r"Client01 disconnected \(drained\)")


async def test_sigterm_during_a_drain_shuts_down_at_once(nodes: Nodes) -> None:
    node = await nodes.start_node("--drain-timeout", "600", "--log-level", "debug")
    client = await LineClient.open(node.port)
    await client.greeting()
    node.send_signal(signal.SIGUSR1)
    assert await client.read_line() == NOTICE
    node.send_signal(signal.SIGUSR1)
    await node.wait_for_log(r"SIGUSR1 received, but the server is stopping already")
    node.send_signal(signal.SIGTERM)
    assert await client.read_line() == replies.SERVER_SHUTTING_DOWN
    client.close()
    assert await node.wait() == 0
    await node.wait_for_log(r"Client01 disconnected \(drained\)")


# The client


@pytest.fixture
async def two_servers() -> AsyncIterator[tuple[ChatServer, ChatServer]]:
    """Two servers in this process over one backend; the first drains to the second."""
    backend = memory_backend(TEST_SETTINGS)
    second = ChatServer(TEST_SETTINGS, backend)
    await second.start()
    first = ChatServer(replace(TEST_SETTINGS, drain_redirect=f"127.0.0.1:{second.port}"), backend)
    await first.start()
    yield first, second
    for server in (first, second):
        await server.shutdown()


@both_loops
async def test_a_drained_client_moves_to_the_address_it_is_told_and_resumes_there(
    two_servers: tuple[ChatServer, ChatServer],
) -> None:
    first, second = two_servers
    events: list[Event] = []
    notes: list[str] = []
    typing = Typing()

    async def at_once(delay: float) -> None:
        """No wait before reconnecting: nothing here needs one."""

    settings = ClientSettings(port=first.port, name="alice", room="dev")
    async with ChatClient(
        settings, reconnect=True, notify=notes.append, wait=at_once, jitter=lambda: 0.0
    ) as client:
        await client.open(configured_only(""))
        running = asyncio.ensure_future(client.run(typing, events.append))
        await until_shown(events, "joined #dev: 1 member")
        friend = await LineClient.open(second.port)
        await named(friend, "bob", "dev")
        draining = asyncio.ensure_future(first.drain())
        await until_shown(
            events, r"Resumed: you are alice again in #dev; \d+ missed messages follow"
        )
        assert await bounded(draining), "alice left the draining server"
        await next_matching(friend, f"{EVENT}#dev \\*: alice is back")
        typing.lines.put_nowait(b"/say dev moved")
        await next_matching(friend, f"{EVENT}#dev alice: moved")
        typing.lines.put_nowait(b"exit")
        assert await bounded(running) == EXIT_OK
        friend.close()
    notice = f"Server draining: please reconnect to 127.0.0.1:{second.port}."
    assert Draining(notice, ("127.0.0.1", second.port)) in events
    assert (
        f"the server is draining; moving to 127.0.0.1:{second.port};"
        " reconnecting for up to 60 seconds..."
    ) in notes
    assert "reconnected as Client03." in notes  # alice was Client01, bob Client02


async def test_a_piped_client_prints_the_notice_and_exits_5(
    server: ChatServer, ackchat: ClientCommand
) -> None:
    process = await ackchat.start(server.port)
    assert process.stdout is not None
    assert process.stderr is not None
    for line in WELCOME:
        received = (await bounded(process.stdout.readline())).decode()
        assert shown([received.removesuffix("\n")]) == [line]
    assert await bounded(server.drain())
    assert await bounded(process.wait()) == EXIT_SERVER_CLOSED
    assert await process.stdout.read() == f"{NOTICE}\n".encode()
    assert await process.stderr.read() == (
        b"ackchat: the server is draining and asked its clients to reconnect.\n"
    )


async def test_on_a_terminal_a_drained_client_reconnects_to_another_process_and_goes_on(
    nodes: Nodes, ackchat: ClientCommand
) -> None:
    """Embedded mode: the other process does not know the session, and the client says so."""
    second = await nodes.start_node()
    first = await nodes.start_node("--drain-redirect", f"127.0.0.1:{second.port}")
    terminal = Terminal()
    try:
        environment = {**ackchat.environment, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
        process = await asyncio.create_subprocess_exec(
            ackchat.path, "connect", "--port", str(first.port), "--name", "alice",
            stdin=terminal.child, stdout=terminal.child, stderr=terminal.child,
            env=environment, start_new_session=True,
        )  # fmt: skip
        ackchat.processes.append(process)
        await terminal.expect(b"alice>")
        first.send_signal(signal.SIGUSR1)
        await terminal.expect(f"please reconnect to 127.0.0.1:{second.port}.".encode())
        await terminal.expect(f"moving to 127.0.0.1:{second.port}; reconnecting".encode())
        await terminal.expect(b"reconnected as Client01.")
        await terminal.expect(
            b"the session could not be resumed (unknown or expired resume token);"
            b" you are Client01 now."
        )
        assert await first.wait() == 0
        terminal.type(b"still chatting\r")
        await terminal.expect(b"still chatting ACK")
        terminal.type(b"exit\r")
        await terminal.expect(b"Goodbye, Client01.")
        assert await bounded(process.wait()) == EXIT_OK
    finally:
        terminal.close()
    await first.wait_for_log(r"drained: every client has left")


class AskedBackend(DeferredBackend):
    """A deferred backend that also notes which operations it was asked for."""

    def __init__(self, inner: MemoryBackend) -> None:
        super().__init__(inner)
        self.asked: list[str] = []

    def __getattr__(self, operation: str) -> Callable[..., Pending[Any]]:
        self.asked.append(operation)
        return super().__getattr__(operation)

    async def asked_for(self, operation: str) -> None:
        async def probe() -> bool:
            return operation in self.asked

        await eventually(probe, f"the backend was asked for {operation}")


@both_loops
async def test_a_drained_client_reads_the_replies_it_is_due_before_it_leaves() -> None:
    """The notice overtakes a reply the backend has not given yet: that reply still comes."""
    backend = AskedBackend(memory_backend(TEST_SETTINGS))
    server = ChatServer(TEST_SETTINGS, cast(Backend, backend))
    await server.start()
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"/rooms\n")
    output = io.StringIO()

    async def told() -> bool:
        return NOTICE in output.getvalue()

    try:
        settings = ClientSettings(port=server.port)
        client = asyncio.ensure_future(run_piped(settings, read_fd, output))
        await backend.asked_for("admit")
        backend.settle()
        await backend.asked_for("rooms")
        draining = asyncio.ensure_future(server.drain())
        await eventually(told, "the client was told to reconnect")
        backend.settle()
        with pytest.raises(ServerDrainingError):
            await bounded(client)
        assert await bounded(draining)
    finally:
        os.close(write_fd)
        os.close(read_fd)
        await server.shutdown()
    assert shown(output.getvalue().splitlines()) == [*WELCOME, NOTICE, "rooms: 0"]


@both_loops
async def test_send_still_gets_its_reply_from_a_draining_server_and_exits_0() -> None:
    backend = AskedBackend(memory_backend(TEST_SETTINGS))
    server = ChatServer(TEST_SETTINGS, cast(Backend, backend))
    await server.start()
    output = io.StringIO()
    try:
        settings = ClientSettings(port=server.port, send="/rooms")
        client = asyncio.ensure_future(run_send(settings, output))
        await backend.asked_for("admit")
        backend.settle()
        await backend.asked_for("rooms")
        draining = asyncio.ensure_future(server.drain())

        async def told() -> bool:
            # Set in the same step as every session is told, ahead of the reply due.
            return server.listener.drain_notice is not None

        await eventually(told, "the client was told to reconnect")
        backend.settle()
        await backend.asked_for("depart")  # it said exit once the reply was in
        backend.settle()
        assert await bounded(client) == EXIT_OK
        assert await bounded(draining)
    finally:
        await server.shutdown()
    assert output.getvalue() == "rooms: 0\n"
