"""Run a real redis-server for tests: a free port on 127.0.0.1, no persistence, stopped after.

Readiness is a bounded poll of ``PING``; a server that exits at once (say, its port was
taken in the meantime) is retried on another port. A test may stop a server and start it
again on the same port, with its data (saved at the stop, as a Redis with persistence
keeps it) or without (as this one, which saves nothing, restarts).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

# Seconds a server may take to answer its first PING, between two polls of it, and to
# exit once told to stop.
READY_TIMEOUT = 10.0
POLL_INTERVAL = 0.02
STOP_TIMEOUT = 10.0
# Free ports tried before giving up, in case another process takes the one chosen.
ATTEMPTS = 3
LOG = "redis.log"


def redis_binary() -> str:
    """The redis-server on PATH; the test fails, never skips, when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: the tests need a real one"
            " (Debian/Ubuntu: apt-get install -y redis-server; see README)",
            pytrace=False,
        )
    return binary


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers_ping(port: int) -> bool:
    """Whether a redis-server on ``port`` answers ``PING`` now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server process listening on ``port`` of 127.0.0.1."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, directory: Path, command: list[str]
    ) -> None:
        self.process = process
        self.port = port
        self._directory = directory
        self._command = command

    @classmethod
    def start(cls, binary: str, *options: str) -> RedisServer:
        """Start ``binary`` with ``options`` and return it once it answers PING."""
        failures = []
        for _ in range(ATTEMPTS):
            port = free_port()
            # Its working directory and log: a temporary one, removed when it stops.
            directory = Path(tempfile.mkdtemp(prefix="redis-test-"))
            arguments = [
                *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--dir", str(directory), "--logfile", str(directory / LOG)),
                *options,
            ]
            command = [binary, *arguments]
            server = cls(_launch(command), port, directory, command)
            if server.wait_ready():
                return server
            failures.append(server.stop())
        raise RuntimeError(f"redis-server did not start: {failures}")

    def wait_ready(self) -> bool:
        """Poll PING until it is answered (True) or the process exits or times out (False)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if answers_ping(self.port):
                return True
            try:
                # The pause between polls, which also sees the server exit.
                self.process.wait(POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                continue
            return False
        return False

    def shut_down(self, save: bool) -> None:
        """Stop the server with ``SHUTDOWN SAVE`` (its data is kept for :meth:`start_again`)
        or ``SHUTDOWN NOSAVE`` (it is lost), and wait for it to exit."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as connection:
            connection.sendall(b"SHUTDOWN SAVE\r\n" if save else b"SHUTDOWN NOSAVE\r\n")
            # Redis closes the connection as it exits (it answers only on failure).
            connection.recv(64)
        self.process.wait(STOP_TIMEOUT)

    def start_again(self) -> None:
        """Start the stopped server again on its port, with what it saved, if anything."""
        self.process = _launch(self._command)
        if not self.wait_ready():
            raise RuntimeError(f"redis-server did not start again on port {self.port}")

    def stop(self) -> str:
        """Stop the server (SIGTERM, then SIGKILL if it lingers); returns its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log = self._directory / LOG
        output = log.read_text(errors="replace") if log.exists() else ""
        shutil.rmtree(self._directory, ignore_errors=True)
        return output


def _launch(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
