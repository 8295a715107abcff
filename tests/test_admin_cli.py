"""``ackchat admin`` against a real ``ackchat serve --http`` process, and the server's
side of it as a process: the generated token file, a busy HTTP port, the drain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from ackchat.cli import main
from ackchat.protocol import replies
from lineclient import LineClient, bounded
from serverprocess import ROOT, ServerProcess

# Process tests need no second event loop: the server runs in its own process.
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

ADMIN_LISTENING = r"admin API and /metrics on http://127\.0\.0\.1:(\d+)/"
TOKEN_WRITTEN = r"admin token written to (\S+) \(readable by you only\)"


@dataclass
class Ran:
    """What one ``ackchat admin`` run printed, and its exit code."""

    code: int
    out: str
    err: str


@dataclass
class AdminServer:
    """A server process with its admin API, and how to call ``ackchat admin`` on it."""

    process: ServerProcess
    url: str
    token_file: Path
    capsys: pytest.CaptureFixture[str]

    async def admin(self, *words: str, token: bool = True, env: Mapping[str, str] = {}) -> Ran:
        """Run ``ackchat admin`` in this process (in a thread: the server's log is read on)."""
        options = ["--url", self.url, *(["--token-file", str(self.token_file)] if token else [])]
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, ["admin", *options, *words], dict(env))
        captured = self.capsys.readouterr()
        return Ran(code, captured.out, captured.err)


@asynccontextmanager
async def admin_process(runtime: Path) -> AsyncIterator[tuple[ServerProcess, str, Path]]:
    """``ackchat serve --http 0`` with its token made at start in ``runtime``: the process,
    its admin API's URL and the token file; stopped after."""
    process = await ServerProcess.start(
        "--http", "0", "--drain-timeout", "5", env={"XDG_RUNTIME_DIR": str(runtime)}
    )
    port = int((await process.wait_for_log(ADMIN_LISTENING)).group(1))
    token_file = Path((await process.wait_for_log(TOKEN_WRITTEN)).group(1))
    try:
        yield process, f"http://127.0.0.1:{port}", token_file
    finally:
        await process.stop()


@pytest.fixture
async def admin_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[AdminServer]:
    """``ackchat serve --http 0`` with its token made at start in ``tmp_path``."""
    async with admin_process(tmp_path) as (process, url, token_file):
        yield AdminServer(process, url, token_file, capsys)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, str, Path]]:
    """One ``admin_process`` for the module's failure tests (run on the module's loop):
    each is refused, so none changes what the server holds for the next."""
    async with admin_process(tmp_path_factory.mktemp("runtime")) as started:
        yield started


@pytest.fixture
def refusing_server(
    refusing_process: tuple[ServerProcess, str, Path], capsys: pytest.CaptureFixture[str]
) -> AdminServer:
    """The module's ``refusing_process``, called with the test's own captured output."""
    return AdminServer(*refusing_process, capsys)


async def test_the_admin_command_watches_and_changes_a_running_server(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    assert admin_server.token_file.parent == tmp_path
    assert oct(admin_server.token_file.stat().st_mode & 0o777) == "0o600"
    client = await LineClient.open(admin_server.process.port)
    await client.greeting()

    status = await admin_server.admin("status", token=False)
    assert status.code == 0, status.err
    lines = status.out.splitlines()
    assert lines[0] == (
        "status: 1 of 3 clients connected, 1 seen, 0 rejected (server full),"
        " 0 dropped from the cache"
    )
    assert lines[1].startswith(f"Client01 127.0.0.1:{client.local_port} connected ")
    assert lines[1].endswith(" still connected")
    assert lines[2:] == [
        "rooms: none",
        "limits: max_clients 3, idle_timeout 0.0, rate_limit 200000.0, rate_burst 400000,"
        " rate_strikes 100, history_limit 10000, status_recent 1000, room_history 50,"
        " direct_history 50",
    ]
    as_json = await admin_server.admin("status", "--json")
    assert json.loads(as_json.out)["connected"] == 1

    clients = (await admin_server.admin("clients")).out.splitlines()
    assert clients[0].split() == ["NAME", "ADDRESS", "CONNECTED", "IDLE", "IN", "OUT", "ROOMS"]
    row = clients[1].split()
    assert (row[0], row[4], row[5], row[6]) == ("Client01", "0", "4", "-")
    assert clients[-1] == "1 of 3 clients connected"

    assert (await admin_server.admin("set", "max_clients", "5")).out == "max_clients 3 -> 5\n"
    await admin_server.process.wait_for_log(r"admin API \(127\.0\.0\.1\): max_clients 3 -> 5")
    again = await admin_server.admin("set", "max_clients", "5")
    assert again.out == "max_clients is 5 already: nothing changed\n"

    kicked = await admin_server.admin("kick", "client01")
    assert (kicked.code, kicked.out) == (0, "kicked Client01\n")
    assert await client.read_line() == replies.KICKED
    assert await client.at_eof()
    assert "(kicked)" in (await admin_server.admin("status")).out


@pytest.mark.parametrize(
    ("words", "token", "env", "code", "message"),
    [
        (
            ["set", "max_clients", "-1"],
            True,
            {},
            7,
            "the server refused it: max_clients must be a positive integer, got -1.",
        ),
        (
            ["set", "max_clients", "ten"],
            True,
            {},
            7,
            "the server refused it: max_clients must be an integer, got 'ten'.",
        ),
        (
            ["set", "nonsense", "1"],
            True,
            {},
            7,
            "the server refused it: unknown setting 'nonsense'.",
        ),
        (["kick", "nobody"], True, {}, 8, "no client called nobody is connected here."),
        (
            ["set", "max_clients", "4"],
            False,
            {},
            6,
            "the admin API needs its token: give --token-file (the file the server logged)"
            " or ACKCHAT_ADMIN_TOKEN.",
        ),
        (
            ["drain"],
            False,
            {"ACKCHAT_ADMIN_TOKEN": "wrong"},
            6,
            "the admin API refused the token.",
        ),
        (["kick"], True, {}, 2, "kick takes NAME"),
        (["set", "max_clients"], True, {}, 2, "set takes KEY VALUE"),
    ],
)
@pytest.mark.asyncio(loop_scope="module", loop_factories=["asyncio"])
async def test_each_failure_is_one_sentence_and_its_own_exit_code(
    refusing_server: AdminServer,
    words: list[str],
    token: bool,
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    ran = await refusing_server.admin(*words, token=token, env=env)
    assert (ran.code, ran.out) == (code, "")
    assert ran.err == f"ackchat admin: {message}\n"


async def test_drain_over_the_api_drains_the_process_as_sigusr1_does(
    admin_server: AdminServer,
) -> None:
    client = await LineClient.open(admin_server.process.port)
    await client.greeting()
    drained = await admin_server.admin("drain")
    assert drained.code == 0, drained.err
    assert drained.out == (
        "draining: 1 connection told to reconnect; the server exits once they have left,"
        " or after 5 seconds\n"
    )
    await admin_server.process.wait_for_log(
        r"drain asked for over the admin API \(127\.0\.0\.1\): draining: accepting no more"
    )
    assert await client.read_line() == "Server draining: please reconnect."
    client.close()
    assert await admin_server.process.wait() == 0
    await admin_server.process.wait_for_log(r"drained: every client has left")
    assert not admin_server.token_file.exists()


async def test_an_unreachable_api_is_exit_3_in_one_line() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ackchat", "admin", "status", "--url", f"http://127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await bounded(process.communicate())
    assert (process.returncode, out) == (3, b"")
    assert err.decode() == (
        f"ackchat admin: cannot reach the admin API at http://127.0.0.1:{port}: connection"
        " refused (is the server running with --http?).\n"
    )


async def test_a_busy_http_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await ServerProcess.start(
            "--http", str(port), env={"XDG_RUNTIME_DIR": str(tmp_path)}
        )
        assert await process.wait() == 1
    await process.wait_for_log(
        rf"cannot serve the admin API on 127\.0\.0\.1 port {port}: the address is already in use"
    )
    assert os.listdir(tmp_path) == []


async def test_a_given_token_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    process = await ServerProcess.start(
        "--http",
        "0",
        "--admin-read-token",
        env={"XDG_RUNTIME_DIR": str(tmp_path), "ACKCHAT_ADMIN_TOKEN": "given-token"},
    )
    try:
        port = int((await process.wait_for_log(ADMIN_LISTENING)).group(1))
        assert "reads need the token too" in process.log[-1]
        assert not any("admin token written" in line for line in process.log)
        assert os.listdir(tmp_path) == []
        env = {**os.environ, "ACKCHAT_ADMIN_TOKEN": "given-token"}
        url = f"http://127.0.0.1:{port}"
        code = await asyncio.to_thread(main, ["admin", "clients", "--url", url, "--json"], env)
        assert code == 0
        refused = await asyncio.to_thread(main, ["admin", "clients", "--url", url], {})
        assert refused == 6
    finally:
        assert await process.stop() == 0


async def test_a_value_set_over_the_api_survives_a_reload_of_an_unchanged_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ackchat.toml"
    config.write_text("[serve]\nmax_clients = 4\n")
    process = await ServerProcess.start(
        "--config", str(config), "--http", "0", env={"ACKCHAT_ADMIN_TOKEN": "t"}
    )
    try:
        port = int((await process.wait_for_log(ADMIN_LISTENING)).group(1))
        url = f"http://127.0.0.1:{port}"
        argv = ["admin", "set", "max_clients", "10", "--url", url]
        assert await asyncio.to_thread(main, argv, {"ACKCHAT_ADMIN_TOKEN": "t"}) == 0
        process.send_signal(signal.SIGHUP)
        await process.wait_for_log(
            rf"reload of {config}: max_clients stays at 10, as changed while running"
        )
        config.write_text("[serve]\nmax_clients = 6\n")
        process.send_signal(signal.SIGHUP)
        await process.wait_for_log(rf"reload of {config}: max_clients 10 -> 6$")
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["admin", "status", "--url", url, "--json"], {}) == 0
        assert json.loads(capsys.readouterr().out)["max_clients"] == 6
    finally:
        assert await process.stop() == 0
