"""How ``ackchat bench`` fails: one sentence with a hint on stderr, and a documented exit code.

The load generator runs as a real ``python -m ackchat bench`` process against servers on
127.0.0.1 with ephemeral ports: in-process ackchat servers, or small stand-ins for servers
that speak another protocol.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ackchat.bench import client
from ackchat.bench.client import BenchError
from ackchat.bench.runner import full_message
from ackchat.bench.scenarios import run_scenario
from ackchat.cli import main
from ackchat.client.errors import (
    EXIT_AUTH_FAILED,
    EXIT_CONNECT_FAILED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_SERVER_CLOSED,
    EXIT_SERVER_FULL,
    EXIT_USAGE,
)
from ackchat.protocol.replies import SERVER_SHUTTING_DOWN, SERVER_UNAVAILABLE
from ackchat.settings import BenchSettings
from conftest import ServerFactory
from lineclient import WAIT, LineClient, bounded, eventually

# Short runs: setting up is what these tests are about.
QUICK = ("--warmup", "0", "--duration", "0.2")
ENVIRONMENT = {key: value for key, value in os.environ.items() if not key.startswith("ACKCHAT_")}

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def run_bench(*arguments: str) -> tuple[int, str, str]:
    """Run ``ackchat bench`` with ``arguments``; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ackchat", "bench", *arguments),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENVIRONMENT,
    )
    out, err = await bounded(process.communicate(), 3 * WAIT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def one_sentence(stderr: str, prefix: str = "ackchat bench: ") -> str:
    """The single line on stderr, without its prefix; no exception names, no traceback."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(prefix), stderr
    assert "Error" not in lines[0], stderr
    return lines[0].removeprefix(prefix)


async def connected(port: int) -> int:
    """How many clients the server at ``port`` has connected, this one included."""
    probe = await LineClient.open(port)
    try:
        await probe.read_block()
        await probe.send("status")
        header = (await probe.read_block())[0]
    finally:
        probe.close()
    return int(header.removeprefix("status: ").split()[0])


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def stand_in() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """Start small servers that are not ackchat; yields a function returning each's port."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("scenario", "needs", "change"),
    [
        ("echo", "2 of the 5 connections", "use --connections 2 or fewer"),
        ("idle", "2 of the 5 connections", "use --connections 2 or fewer"),
        ("connect", "2 of the 5 connections", "use --connections 2 or fewer"),
        (
            "fanout",
            "2 of the 6 connections this run holds at once (5 receivers and the sender)",
            "use --connections 1 or fewer",
        ),
    ],
)
async def test_a_full_server_is_told_with_what_it_admits_and_what_to_change(
    start_server: ServerFactory, scenario: str, needs: str, change: str
) -> None:
    server = await start_server(max_clients=2)
    code, out, err = await run_bench(
        "--port", str(server.port), "--scenario", scenario, "--connections", "5", *QUICK
    )
    assert code == EXIT_SERVER_FULL
    assert out == ""
    sentence = one_sentence(err)
    assert sentence.startswith("the server is full: it admitted "), sentence
    assert needs in sentence
    assert f"{change}, or start the server with --max-clients" in sentence


async def test_a_full_server_is_counted_in_one_process_when_workers_share_the_load(
    start_server: ServerFactory,
) -> None:
    server = await start_server(max_clients=2)
    code, _, err = await run_bench(
        "--port", str(server.port), "--connections", "5", "--workers", "2", *QUICK
    )
    assert code == EXIT_SERVER_FULL
    assert one_sentence(err) == (
        "the server is full: it admitted 2 of the 5 connections this run holds at once;"
        " use --connections 2 or fewer, or start the server with --max-clients 5 or more."
    )


async def test_a_run_that_fits_the_server_exactly_succeeds(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=2)
    for scenario in ("echo", "connect"):
        code, out, err = await run_bench(
            *("--port", str(server.port), "--scenario", scenario),
            *("--connections", "2", "--workers", "2", "--json", *QUICK),
        )
        assert code == 0, err
        summary = json.loads(out)
        assert summary["errors"] == 0
        assert summary["replies"] > 0


def test_the_status_scenario_names_both_of_its_client_counts() -> None:
    options = BenchSettings(scenario="status", connections=5, status_clients=10)
    assert full_message(options, 2) == (
        "the server is full: it admitted 2 of the 15 connections this run holds at once"
        " (5 echo clients and 10 --status-clients); start the server with --max-clients 15"
        " or more."
    )


async def test_a_server_that_is_down_is_reported_as_ackchat_connect_reports_it() -> None:
    port = str(closed_port())
    code, _, err = await run_bench("--port", port, *QUICK)
    connect = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ackchat", "connect", "--port", port),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=ENVIRONMENT,
    )
    _, connect_err = await bounded(connect.communicate())
    assert code == connect.returncode == EXIT_CONNECT_FAILED
    assert one_sentence(err) == one_sentence(connect_err.decode(), "ackchat: ")
    assert one_sentence(err) == (
        f"cannot connect to 127.0.0.1:{port}: connection refused; is the server running?"
    )


async def test_every_scenario_reports_a_server_that_is_down_the_same_way() -> None:
    port = str(closed_port())
    scenarios = ("connect", "idle", "fanout", "status")
    # Each run is a process of its own that connects nowhere: all at once.
    runs = await asyncio.gather(
        *(run_bench("--port", port, "--scenario", scenario, *QUICK) for scenario in scenarios)
    )
    for scenario, (code, out, err) in zip(scenarios, runs, strict=True):
        assert code == EXIT_CONNECT_FAILED, (scenario, out, err)
        assert one_sentence(err).startswith(f"cannot connect to 127.0.0.1:{port}: "), scenario


async def test_a_server_of_another_protocol_gets_a_hint(
    stand_in: Callable[[Handler], Awaitable[int]],
) -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await reader.read()
        writer.close()

    port = await stand_in(banner)
    code, _, err = await run_bench("--port", str(port), "--connections", "2", *QUICK)
    assert code == EXIT_ERROR
    assert one_sentence(err) == (
        "the server does not greet as ackchat does (its first line: 'SSH-2.0-OpenSSH_9.6');"
        " for a server that sends no greeting (a line echo server, redis-server)"
        " use --line-protocol."
    )


@pytest.mark.parametrize(
    ("first", "code", "sentence"),
    [
        (SERVER_SHUTTING_DOWN, EXIT_SERVER_CLOSED, "the server is shutting down."),
        ("", EXIT_SERVER_CLOSED, "the server closed the connection without a greeting."),
        (SERVER_UNAVAILABLE, EXIT_SERVER_CLOSED, SERVER_UNAVAILABLE),
        (
            "Connection refused: address not allowed. Try again later.",
            EXIT_CONNECT_FAILED,
            "Connection refused: address not allowed. Try again later.",
        ),
    ],
)
async def test_a_server_that_turns_clients_away_is_reported_in_its_words(
    stand_in: Callable[[Handler], Awaitable[int]], first: str, code: int, sentence: str
) -> None:
    async def turn_away(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if first:
            writer.write(first.encode() + b"\n")
        writer.close()

    port = await stand_in(turn_away)
    scenarios = ("echo", "idle", "fanout")
    # The stand-in turns every connection away alike: the runs may come all at once.
    runs = await asyncio.gather(
        *(
            run_bench("--port", str(port), "--scenario", scenario, "--connections", "2", *QUICK)
            for scenario in scenarios
        )
    )
    for scenario, (exit_code, _, err) in zip(scenarios, runs, strict=True):
        assert exit_code == code, (scenario, err)
        assert one_sentence(err) == sentence, scenario


async def test_a_server_that_sends_no_greeting_times_out_with_a_hint(
    stand_in: Callable[[Handler], Awaitable[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    port = await stand_in(silent)
    monkeypatch.setattr(client, "CONNECT_TIMEOUT", 0.2)
    options = BenchSettings(port=port, connections=2, warmup=0.0, duration=0.2)
    with pytest.raises(BenchError) as caught:
        await run_scenario(options)
    assert caught.value.exit_code == EXIT_CONNECT_FAILED
    assert str(caught.value) == (
        f"127.0.0.1:{port} accepted the connection but sent no greeting within 0.2 seconds;"
        " for a server that sends no greeting (a line echo server, redis-server)"
        " use --line-protocol."
    )


async def test_a_server_that_wants_a_password_is_explained(start_server: ServerFactory) -> None:
    server = await start_server(password="correct horse")
    for scenario in ("echo", "fanout"):
        code, _, err = await run_bench(
            "--port", str(server.port), "--scenario", scenario, "--connections", "2", *QUICK
        )
        assert code == EXIT_AUTH_FAILED
        assert "asks for a password" in one_sentence(err)


async def test_line_protocol_against_ackchat_says_to_leave_it_out(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    code, out, err = await run_bench(
        "--port", str(server.port), "--line-protocol", "--connections", "1", *QUICK
    )
    assert code == EXIT_ERROR
    assert one_sentence(err).endswith(
        "the server greets its clients as ackchat does: leave out --line-protocol."
    )
    table, notes = out.split("\n\n", 1)
    assert "Welcome! You are" not in table
    assert notes.startswith("error: expected b'")
    assert "Welcome! You are" in notes


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--scenario", "fanout", "--line-protocol"], "the fanout scenario uses rooms"),
        (["--scenario", "status", "--line-protocol"], "the status scenario uses 'status all'"),
        (["--server-pid", "999999999"], "cannot read the memory of process 999999999"),
        (["--connections", "100000000"], "need more open files than this system allows"),
    ],
)
def test_options_that_cannot_make_a_run_are_usage_errors(
    arguments: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--port", str(closed_port()), *arguments], ENVIRONMENT) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert words in one_sentence(captured.err)


async def test_ctrl_c_ends_the_run_with_one_line_and_exit_code_130(
    start_server: ServerFactory,
) -> None:
    server = await start_server(max_clients=3)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ackchat", "bench", "--port", str(server.port)),
        *("--connections", "2", "--workers", "2", "--duration", "60"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENVIRONMENT,
        start_new_session=True,
    )

    async def both_connected() -> bool:
        return await connected(server.port) == 3  # The run's two and this probe.

    await eventually(both_connected, "the bench connected", 0.05)
    os.killpg(process.pid, signal.SIGINT)  # What Ctrl-C on a terminal sends.
    out, err = await bounded(process.communicate())
    assert process.returncode == EXIT_INTERRUPTED
    assert out == b""
    assert one_sentence(err.decode()) == "interrupted."


async def test_lost_connections_during_a_run_say_the_server_closed_them(
    stand_in: Callable[[Handler], Awaitable[int]],
) -> None:
    async def echo_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(100):
            writer.write((await reader.readline()).rstrip(b"\n") + b" ACK\n")
        writer.close()

    port = await stand_in(echo_then_hang_up)
    code, out, err = await run_bench(
        "--port", str(port), "--line-protocol", "--connections", "1", "--warmup", "0"
    )
    assert code == EXIT_ERROR
    assert out == ""
    reason = one_sentence(err)
    assert reason.startswith("the server closed the connection (")
    assert reason.endswith("); did it stop, or cut clients off for a limit?")


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(["bench", "--help"])
    assert leaving.value.code == 0
    help_text = capsys.readouterr().out
    codes = help_text.split("exit codes:\n", 1)[1].splitlines()
    listed = {
        line.split()[0] for line in codes if line.startswith("  ") and line.split()[0].isdigit()
    }
    assert listed == {"0", "1", "2", "3", "4", "5", "6", "130"}
