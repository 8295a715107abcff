"""The servers compared: how each one starts and how the load generator talks to it.

Each ackchat runs with ``PYTHONPATH`` set to its own source tree, so the code measured
is the code named (this checkout's, or the earlier commit's worktree).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ackchat.settings import BenchSettings
from comparison import ROOT

ACKCHAT = "ackchat"
# ackchat with its HTTP side on, and the dashboard open on it in a browser (issue #13).
HTTP = "ackchat http"
EARLIER = "ackchat earlier"
UVLOOP = "uvloop echo"
STREAMS = "streams echo"
REDIS = "redis-server"
BASELINES = ROOT / "bench" / "baselines"
# Room for the idle scenario's clients.
MAX_CLIENTS = 20000
# The last commit before chat ("Long replies yield to other connections..."); its
# successor is "Chat core (pure)...".
BEFORE_CHAT = "0aec447"


@dataclass(frozen=True)
class Server:
    """A server to compare: its command line for a port, and how to talk to it."""

    name: str
    command: Callable[[int], list[str]]
    load: BenchSettings = field(default_factory=BenchSettings)
    # PYTHONPATH for the server process: which ackchat source tree runs.
    source: Path | None = None
    # Whether it also serves ``--http`` with the dashboard open on it in a browser.
    dashboard: bool = False


def ackchat_command(port: int) -> list[str]:
    """ackchat with its default settings, except room for the idle scenario's clients."""
    serve = ["serve", "--port", str(port), "--max-clients", str(MAX_CLIENTS)]
    return [sys.executable, "-m", "ackchat", *serve]


def earlier_command(port: int) -> list[str]:
    """The earlier ackchat with today's rate-limit defaults (it knows both options).

    Before ``9047241`` the default was 50,000 lines/s and cut off one pipelining client
    early; the same limit on both compares the code, not the defaults.
    """
    rate = ["--rate-limit", "200000", "--rate-burst", "400000"]
    return [*ackchat_command(port), *rate]


def with_http(command: Callable[[int], list[str]], http_port: int) -> Callable[[int], list[str]]:
    """``command`` serving the HTTP side (admin API, dashboard) on 127.0.0.1:``http_port`` too."""
    return lambda port: [*command(port), "--http", f"127.0.0.1:{http_port}"]


def baseline_command(script: str) -> Callable[[int], list[str]]:
    """A bare echo server from bench/baselines/."""
    return lambda port: [sys.executable, str(BASELINES / script), "--port", str(port)]


def redis_command(port: int) -> list[str]:
    """redis-server without persistence, allowed enough clients for the idle scenario."""
    return [
        "redis-server",
        *("--port", str(port), "--save", "", "--appendonly", "no"),
        *("--maxclients", "15000"),
    ]


LINE = BenchSettings(line_protocol=True)


# Each server's name on the command line (``--servers``).
SHORT_NAMES = {
    "ackchat": ACKCHAT,
    "http": HTTP,
    "earlier": EARLIER,
    "uvloop": UVLOOP,
    "streams": STREAMS,
    "redis": REDIS,
}


def lineup(earlier: Path | None, redis: bool, dashboard: bool = False) -> list[Server]:
    """The servers of a round in the order they run: ackchat (and with ``dashboard``,
    ackchat with its HTTP side and the dashboard open), the earlier one, the rest.

    ``earlier`` is the earlier ackchat's worktree (None: not compared); ``redis`` says
    whether redis-server is installed, ``dashboard`` whether chromium and Playwright are.
    """
    servers = [Server(ACKCHAT, ackchat_command, source=ROOT / "src")]
    if dashboard:
        servers.append(Server(HTTP, ackchat_command, source=ROOT / "src", dashboard=True))
    if earlier is not None:
        servers.append(Server(EARLIER, earlier_command, source=earlier / "src"))
    servers.append(Server(UVLOOP, baseline_command("echo_uvloop.py"), LINE))
    servers.append(Server(STREAMS, baseline_command("echo_streams.py"), LINE))
    if redis:
        ping = replace(LINE, request="PING", expect="+PONG", quit="QUIT", pubsub="redis")
        servers.append(Server(REDIS, redis_command, ping))
    return servers
