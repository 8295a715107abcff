"""The server as a process: signals, reload, exit codes and the original's entry point."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lineclient import LineClient, bounded
from serverprocess import ROOT, ServerProcess

# Process tests need no second event loop: the server runs in its own process.
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])


@pytest.fixture
async def processes() -> AsyncIterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.kill()
        await process.wait()


async def test_sigterm_tells_clients_and_exits_0(processes: list[ServerProcess]) -> None:
    server = await ServerProcess.start()
    processes.append(server)
    clients = [await LineClient.open(server.port) for _ in range(3)]
    for client in clients:
        await client.greeting()
    server.process.send_signal(signal.SIGTERM)
    for client in clients:
        assert await client.read_line() == "Server is shutting down. Goodbye."
        assert await client.at_eof()
        client.close()
    assert await server.wait() == 0
    await server.wait_for_log(r"server stopped")


async def test_sigint_exits_0(processes: list[ServerProcess]) -> None:
    server = await ServerProcess.start()
    processes.append(server)
    server.process.send_signal(signal.SIGINT)
    assert await server.wait() == 0


async def test_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ackchat", "serve", "--port", str(port),
            stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, error = await bounded(process.communicate())
    assert process.returncode == 1
    lines = error.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"cannot listen on 127.0.0.1 port {port}" in lines[0]
    assert "already in use" in lines[0]


def bad_settings(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """Settings a server cannot start with, and the sentence that says why."""
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    unreadable = tmp_path / "secret-dir"
    unreadable.mkdir()
    return {
        "missing password file": (
            ["--password-file", str(tmp_path / "missing")],
            f"ackchat: cannot read the password file {tmp_path / 'missing'}: No such file",
        ),
        "password file is a folder": (
            ["--password-file", str(unreadable)],
            f"ackchat: cannot read the password file {unreadable}: Is a directory",
        ),
        "certificate not PEM": (
            ["--tls-cert", str(not_pem), "--tls-key", str(not_pem)],
            f"ackchat: cannot load the TLS certificate chain from {not_pem} and {not_pem}:"
            f" {not_pem} holds no PEM certificate",
        ),
        "zero clients": (["--max-clients", "0"], "ackchat: --max-clients must be a positive"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing password file", "password file is a folder", "certificate not PEM", "zero clients"],
)
async def test_a_bad_setting_is_one_plain_sentence_and_exit_2(case: str, tmp_path: Path) -> None:
    options, sentence = bad_settings(tmp_path)[case]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ackchat", "serve", "--port", "0", *options,
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, error = await bounded(process.communicate())
    lines = error.decode().strip().splitlines()
    assert process.returncode == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(sentence), lines


async def test_sighup_reloads_max_clients(tmp_path: Path, processes: list[ServerProcess]) -> None:
    config = tmp_path / "ackchat.toml"
    config.write_text("[serve]\nmax_clients = 1\n")
    server = await ServerProcess.start("--config", str(config))
    processes.append(server)
    first = await LineClient.open(server.port)
    await first.greeting()
    refused = await LineClient.open(server.port)
    assert await refused.read_line() == "Server is full. Try again later."

    config.write_text("[serve]\nmax_clients = 2\n")
    server.process.send_signal(signal.SIGHUP)
    await server.wait_for_log(rf"reload of {config}: max_clients 1 -> 2$")
    second = await LineClient.open(server.port)
    assert await second.greeting() == "Client02"
    assert (await second.status())[0].startswith("status: 2 of 2 clients connected")

    config.write_text("[serve]\nmax_clients = 0\n")
    server.process.send_signal(signal.SIGHUP)
    await server.wait_for_log(r"reload failed, keeping the running configuration: .*positive")
    assert (await second.status())[0].startswith("status: 2 of 2 clients connected")

    config.write_text("[serve]\nmax_clients = 1\n")
    server.process.send_signal(signal.SIGHUP)
    await server.wait_for_log(rf"reload of {config}: max_clients 2 -> 1$")
    assert await first.ask("still here") == "still here ACK"
    assert await second.ask("me too") == "me too ACK"


async def test_sighup_says_what_it_left_alone(
    tmp_path: Path, processes: list[ServerProcess]
) -> None:
    config = tmp_path / "ackchat.toml"
    config.write_text("[serve]\nmax_clients = 4\nidle_timeout = 0\n")
    server = await ServerProcess.start("--config", str(config), "--idle-timeout", "50")
    processes.append(server)
    server.process.send_signal(signal.SIGHUP)
    await server.wait_for_log(rf"INFO .*reload of {config}: nothing changed$")
    await server.wait_for_log(
        rf"INFO .*reload of {config}: idle_timeout in the file is overridden by"
        r" --idle-timeout; left at 50.0$"
    )
    config.write_text(
        "[serve]\nmax_clients = 4\nidle_timeout = 0\nhistory_limit = 5\nbacklog = 5\n"
    )
    server.process.send_signal(signal.SIGHUP)
    await server.wait_for_log(rf"INFO .*reload of {config}: history_limit 10000 -> 5$")
    await server.wait_for_log(
        rf"INFO .*reload of {config}: backlog \(1024 -> 5\) changed in the file but"
        " needs a restart; left as it is$"
    )
    config.write_text("[serve]\nmax_client = 4\n")
    server.process.send_signal(signal.SIGHUP)
    await server.wait_for_log(
        r"ERROR .*reload failed, keeping the running configuration: .*unknown setting"
        r" 'max_client' in \[serve\]; did you mean 'max_clients'\?$"
    )


async def test_sighup_without_a_config_file_says_so(processes: list[ServerProcess]) -> None:
    server = await ServerProcess.start()
    processes.append(server)
    server.process.send_signal(signal.SIGHUP)
    await server.wait_for_log(r"INFO .*reload: there is no config file to reload")
    client = await LineClient.open(server.port)
    assert await client.greeting() == "Client01"
    client.close()


async def test_python_server_py_starts_the_server(processes: list[ServerProcess]) -> None:
    server = await ServerProcess.start(command=[str(ROOT / "server.py")])
    processes.append(server)
    client = await LineClient.open(server.port)
    assert await client.greeting() == "Client01"
    assert await client.ask("Hello, Server!") == "Hello, Server! ACK"
    client.close()
    server.process.send_signal(signal.SIGTERM)
    assert await server.wait() == 0


async def test_sigterm_under_heavy_load_records_everyone_and_exits_0(
    processes: list[ServerProcess],
) -> None:
    server = await ServerProcess.start(
        "--max-clients", "40", "--rate-limit", "0", "--log-level", "debug"
    )
    processes.append(server)
    clients = [await LineClient.open(server.port) for _ in range(40)]
    for client in clients:
        await client.greeting()

    async def hammer(client: LineClient) -> int:
        """Pipeline lines until the shutdown notice arrives; return the ACKs seen."""
        acks = 0
        await client.send_raw(b"load\n" * 2000)
        while True:
            text = await client.read_line()
            if text == "Server is shutting down. Goodbye.":
                assert await client.at_eof()
                client.close()
                return acks
            assert text == "load ACK"
            acks += 1
            if acks % 500 == 0:
                await client.send_raw(b"load\n" * 500)

    tasks = [asyncio.ensure_future(hammer(client)) for client in clients]
    await server.wait_for_log(r"Client40 connected")
    server.process.send_signal(signal.SIGTERM)
    acks = await bounded(asyncio.gather(*tasks))
    assert await server.wait() == 0
    assert sum(acks) > 0
    await server.wait_for_log(r"server stopped")
    departures = [text for text in server.log if "disconnected (server shutdown)" in text]
    assert len(departures) == 40


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_the_event_loop_can_be_chosen(loop: str, processes: list[ServerProcess]) -> None:
    server = await ServerProcess.start("--loop", loop)
    processes.append(server)
    await server.wait_for_log(rf"event loop: {loop}$")
    client = await LineClient.open(server.port)
    assert await client.greeting() == "Client01"
    client.close()
