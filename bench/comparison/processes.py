"""Server processes: a free port on 127.0.0.1, start, wait until it listens, stop.

A server's stderr goes to a temporary file, so that a server which exits at once can be
reported with its own last words and a chatty one cannot block on a full pipe.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from comparison import ComparisonError
from comparison.servers import Server

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port that is free now on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def last_line(log: IO[bytes]) -> str:
    """The last line a process wrote to ``log``, without a final full stop."""
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip().rstrip(".") if lines else ""


def wait_for_port(name: str, port: int, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    """Return once ``port`` accepts connections; raise if the server exits or is too slow."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = last_line(log)
            raise ComparisonError(
                f"{name} exited with code {process.returncode} before listening on port"
                f" {port}{': ' + said if said else ''}."
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise ComparisonError(f"{name} did not listen on port {port} within {START_TIMEOUT:g} s.")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if the process has not exited after ``STOP_TIMEOUT``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running(server: Server) -> Iterator[tuple[int, int]]:
    """Start ``server`` on a free port; yields (port, pid); stops it on the way out."""
    port = free_port()
    environment = dict(os.environ)
    if server.source is not None:
        environment["PYTHONPATH"] = str(server.source)
    with tempfile.TemporaryFile() as log:
        try:
            process = subprocess.Popen(
                server.command(port), stdout=subprocess.DEVNULL, stderr=log, env=environment
            )
        except OSError as error:
            raise ComparisonError(f"{server.name} cannot be started: {error.strerror}.") from None
        try:
            wait_for_port(server.name, port, process, log)
            yield port, process.pid
        finally:
            stop(process)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far, from /proc/PID/stat.

    Raises ComparisonError when the process is gone (or this is not Linux).
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        raise ComparisonError(f"the CPU time of process {pid} cannot be read.") from None
    # After the command's closing parenthesis: state is field 3, utime 14, stime 15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
