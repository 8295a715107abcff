"""The piped client against a real server: in process, and as the ``ackchat`` command."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import pytest

from ackchat.client import EXIT_OK, EXIT_SERVER_CLOSED, ClientError
from ackchat.client.piped import run_piped
from ackchat.protocol import replies
from ackchat.server.assembly import ChatServer
from ackchat.settings import ENV_PREFIX, ClientSettings
from conftest import ClientFactory, ServerFactory
from lineclient import bounded

# The greeting's resume token is random: output lines go through shown() to compare.
TOKEN = f"{replies.RESUME_PREFIX}<token>"
WELCOME = [
    "Welcome! You are Client01.",
    "Every line you send comes back with ACK. Type 'help' for the commands.",
    TOKEN,
]


def shown(lines: list[str]) -> list[str]:
    """Output lines, with the resume token replaced by a placeholder."""
    return [TOKEN if text.startswith(replies.RESUME_PREFIX) else text for text in lines]


# The client runs in its own process there, so a second event loop for the server adds nothing.
one_loop = pytest.mark.asyncio(loop_factories=["asyncio"])


async def run_in_process(server: ChatServer, data: bytes) -> tuple[int, list[str]]:
    """Run the piped client with ``data`` as its whole input; its exit code and output."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    output = io.StringIO()
    try:
        code = await bounded(run_piped(ClientSettings(port=server.port), read_fd, output))
    finally:
        os.close(read_fd)
    return code, shown(output.getvalue().splitlines())


async def test_replies_are_printed_in_order_with_blocks_unframed(server: ChatServer) -> None:
    code, lines = await run_in_process(server, b"Hello, Server!\nhelp\nexit\n")
    assert code == EXIT_OK
    assert lines == [
        *WELCOME,
        "Hello, Server! ACK",
        "help:",
        *replies.HELP_LINES,
        "Goodbye, Client01.",
    ]


async def test_the_end_of_input_says_exit(server: ChatServer, connect: ClientFactory) -> None:
    code, lines = await run_in_process(server, b"one\n")
    assert code == EXIT_OK
    assert lines == [*WELCOME, "one ACK", "Goodbye, Client01."]
    observer = await connect(server)
    await observer.greeting()
    entries = await observer.status()
    assert entries[1].startswith("Client01 ")
    assert entries[1].endswith("(exit)")


async def test_empty_input_only_says_exit(server: ChatServer) -> None:
    assert await run_in_process(server, b"") == (EXIT_OK, [*WELCOME, "Goodbye, Client01."])


async def test_lines_after_exit_are_not_sent(server: ChatServer) -> None:
    code, lines = await run_in_process(server, b"a\nEXIT\nb\n")
    assert code == EXIT_OK
    assert lines == [*WELCOME, "a ACK", "Goodbye, Client01."]


async def test_crlf_and_a_last_line_without_line_end(server: ChatServer) -> None:
    code, lines = await run_in_process(server, b"one\r\ntwo")
    assert code == EXIT_OK
    assert lines == [*WELCOME, "one ACK", "two ACK", "Goodbye, Client01."]


async def test_an_error_answers_its_line_and_the_session_goes_on(
    start_server: ServerFactory,
) -> None:
    server = await start_server(max_line_bytes=16)
    code, lines = await run_in_process(server, b"\xff\n" + b"x" * 40 + b"\nafter\n")
    assert code == EXIT_OK
    assert lines == [
        *WELCOME,
        replies.INVALID_UTF8,
        "ERROR line too long: 40 bytes, the limit is 16; the line was discarded.",
        "after ACK",
        "Goodbye, Client01.",
    ]


async def test_a_connect_timeout_of_0_connects_and_talks(server: ChatServer) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"one\n")
    os.close(write_fd)
    output = io.StringIO()
    try:
        settings = ClientSettings(port=server.port, connect_timeout=0)
        assert await bounded(run_piped(settings, read_fd, output)) == EXIT_OK
    finally:
        os.close(read_fd)
    assert shown(output.getvalue().splitlines()) == [*WELCOME, "one ACK", "Goodbye, Client01."]


async def test_a_connect_timeout_of_0_waits_for_the_greeting_until_the_server_closes() -> None:
    accepted, release = asyncio.Event(), asyncio.Event()

    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await release.wait()
        writer.close()

    silent = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    try:
        async with silent:
            settings = ClientSettings(port=silent.sockets[0].getsockname()[1], connect_timeout=0)
            client = asyncio.ensure_future(run_piped(settings, read_fd, io.StringIO()))
            accepting = asyncio.ensure_future(accepted.wait())
            await bounded(asyncio.wait({client, accepting}, return_when=asyncio.FIRST_COMPLETED))
            assert not client.done(), f"the client gave up at once: {client.exception()}"
            release.set()
            # The server's closing, not a time limit, ends the wait.
            with pytest.raises(ClientError) as failure:
                await bounded(client)
    finally:
        os.close(read_fd)
    assert failure.value.exit_code == EXIT_SERVER_CLOSED
    assert str(failure.value) == "the server closed the connection without a greeting."


# The ackchat command


class ClientCommand:
    """Starts ``ackchat connect`` processes; whatever is still running at the end is killed.

    Their ``XDG_STATE_HOME`` is ``state``, so that an interactive client keeps its input
    history there and not in the home directory of whoever runs the tests.
    """

    def __init__(self, path: str, state: Path) -> None:
        self.path = path
        self.state = state
        # ACKCHAT_ settings in the test's environment must not change the client.
        self.environment = {
            name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)
        }
        self.environment["XDG_STATE_HOME"] = str(state)
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(
        self, port: int, *options: str, stdin: int | IO[bytes] = asyncio.subprocess.PIPE
    ) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            self.path, "connect", "--port", str(port), *options,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.environment,
        )  # fmt: skip
        self.processes.append(process)
        return process

    async def shell(self, pipeline: str, port: int) -> asyncio.subprocess.Process:
        """Run ``pipeline`` in sh with ``$ACKCHAT`` and ``$PORT`` set."""
        process = await asyncio.create_subprocess_exec(
            "sh", "-c", pipeline,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self.environment, "ACKCHAT": self.path, "PORT": str(port)},
        )  # fmt: skip
        self.processes.append(process)
        return process


@pytest.fixture
async def ackchat(tmp_path: Path) -> AsyncIterator[ClientCommand]:
    """The installed console script, ready to start."""
    path = shutil.which("ackchat")
    if path is None:
        pytest.fail("the ackchat command is not on PATH; run: pip install -e '.[test]'")
    command = ClientCommand(path, tmp_path / "state")
    yield command
    for process in command.processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port that refuses connections: bound, so no one else takes it, but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def finish(process: asyncio.subprocess.Process) -> tuple[int, list[str], str]:
    """Close stdin, wait for the exit; the exit code, stdout lines and stderr."""
    stdout, stderr = await bounded(process.communicate())
    assert process.returncode is not None
    return process.returncode, shown(stdout.decode().splitlines()), stderr.decode()


@one_loop
async def test_the_command_through_a_shell_pipe(server: ChatServer, ackchat: ClientCommand) -> None:
    pipeline = r"""printf 'Hello, Server!\nstatus\nexit\n' | "$ACKCHAT" connect --port $PORT"""
    code, lines, errors = await finish(await ackchat.shell(pipeline, server.port))
    assert (code, errors) == (0, "")
    assert lines[:4] == [*WELCOME, "Hello, Server! ACK"]
    assert lines[4].startswith("status: 1 of 3 clients connected, 1 seen,")
    assert lines[5].startswith("Client01 127.0.0.1:")
    assert lines[5].endswith(" still connected")
    assert lines[6:] == ["Goodbye, Client01."]


@one_loop
async def test_the_command_reads_a_regular_file_as_stdin(
    server: ChatServer, ackchat: ClientCommand, tmp_path: Path
) -> None:
    script = tmp_path / "lines.txt"
    script.write_bytes(b"first\nsecond\n")
    with script.open("rb") as stdin:
        code, lines, errors = await finish(await ackchat.start(server.port, stdin=stdin))
    assert (code, errors) == (0, "")
    assert lines == [*WELCOME, "first ACK", "second ACK", "Goodbye, Client01."]


@one_loop
async def test_connection_refused_exits_3(ackchat: ClientCommand, refusing_port: int) -> None:
    code, lines, errors = await finish(await ackchat.start(refusing_port))
    assert (code, lines) == (3, [])
    assert errors == (
        f"ackchat: cannot connect to 127.0.0.1:{refusing_port}:"
        " connection refused; is the server running?\n"
    )


@one_loop
async def test_no_greeting_within_the_connect_timeout_exits_3(ackchat: ClientCommand) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        process = await ackchat.start(port, "--connect-timeout", "0.1")
        code, lines, errors = await finish(process)
    assert (code, lines) == (3, [])
    assert errors == (
        f"ackchat: 127.0.0.1:{port} accepted the connection but sent no greeting"
        " within 0.1 seconds; if it serves TLS, connect with --tls.\n"
    )


@one_loop
async def test_a_full_server_exits_4(
    start_server: ServerFactory, connect: ClientFactory, ackchat: ClientCommand
) -> None:
    server = await start_server(max_clients=1)
    await (await connect(server)).greeting()
    code, lines, errors = await finish(await ackchat.start(server.port))
    assert (code, lines) == (4, [])
    assert errors == "ackchat: Server is full. Try again later.\n"


@one_loop
async def test_server_shutdown_while_the_client_waits_exits_5(
    server: ChatServer, ackchat: ClientCommand
) -> None:
    process = await ackchat.start(server.port)
    assert process.stdout is not None
    assert process.stderr is not None
    for line in WELCOME:
        received = (await bounded(process.stdout.readline())).decode()
        assert shown([received.removesuffix("\n")]) == [line]
    await server.shutdown()
    assert await bounded(process.wait()) == 5
    assert await process.stdout.read() == f"{replies.SERVER_SHUTTING_DOWN}\n".encode()
    assert await process.stderr.read() == b"ackchat: the server closed the connection.\n"


@one_loop
async def test_idle_timeout_while_the_client_waits_exits_5(
    start_server: ServerFactory, ackchat: ClientCommand
) -> None:
    server = await start_server(idle_timeout=0.2)
    process = await ackchat.start(server.port)
    assert process.stdout is not None
    assert process.stderr is not None
    assert await bounded(process.wait()) == 5
    lines = shown((await process.stdout.read()).decode().splitlines())
    assert lines == [*WELCOME, "Idle timeout: no input for 0.2 seconds. Goodbye."]
    assert await process.stderr.read() == b"ackchat: the server closed the connection.\n"
