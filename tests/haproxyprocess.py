"""Run a real HAProxy for tests, with the configuration docs/CLUSTER.md documents.

The configuration is read from the page, between its ``haproxy.cfg`` markers, and only
its addresses are changed: the frontend and the three nodes get the test's ports. Each
address must appear in it exactly once, so that the page and the test cannot drift apart
without a failure. HAProxy is found on PATH; a test fails, never skips, without it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from lineclient import WAIT, LineClient
from redisserver import free_port

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "CLUSTER.md"
_CONFIG = re.compile(
    r"<!-- haproxy\.cfg: begin -->\n```haproxy\n(.*?)```\n<!-- haproxy\.cfg: end -->", re.DOTALL
)
# The addresses the documented configuration uses: HAProxy's, then the nodes'.
FRONTEND = "127.0.0.1:1234"
NODES = ("127.0.0.1:1241", "127.0.0.1:1242", "127.0.0.1:1243")
# Seconds between two tries to connect through a HAProxy that is starting.
POLL_INTERVAL = 0.02
# Free ports tried for the frontend, in case another process takes the one chosen.
ATTEMPTS = 3


def haproxy_binary() -> str:
    """The haproxy on PATH; the test fails, never skips, when it is not installed."""
    binary = shutil.which("haproxy")
    if binary is None:
        pytest.fail(
            "haproxy is not installed: the tests need a real one"
            " (Debian/Ubuntu: apt-get install -y haproxy; see README)",
            pytrace=False,
        )
    return binary


def documented_config() -> str:
    """The ``haproxy.cfg`` of docs/CLUSTER.md, as written there."""
    match = _CONFIG.search(DOCUMENT.read_text())
    assert match is not None, f"no haproxy.cfg between markers in {DOCUMENT}"
    return match.group(1)


def render(config: str, frontend_port: int, node_ports: Sequence[int]) -> str:
    """``config`` with HAProxy on ``frontend_port`` and the nodes on ``node_ports``."""
    assert len(node_ports) == len(NODES), f"the documented config has {len(NODES)} nodes"
    replacements = {FRONTEND: f"127.0.0.1:{frontend_port}"}
    replacements.update(
        (address, f"127.0.0.1:{port}") for address, port in zip(NODES, node_ports, strict=True)
    )
    for address, replacement in replacements.items():
        # An address followed by a digit would be another one (127.0.0.1:12345).
        pattern = re.escape(address) + r"(?!\d)"
        assert len(re.findall(pattern, config)) == 1, f"{address} must appear once"
        config = re.sub(pattern, replacement, config)
    return config


class HAProxy:
    """A haproxy process in the foreground (``-db``), with its frontend's port and output."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        # What HAProxy wrote (warnings, servers going down and up), read as it comes.
        self.output = bytearray()
        self._reader = asyncio.ensure_future(self._read_output())

    @classmethod
    async def start(cls, config: str, port: int, directory: Path) -> HAProxy:
        """Run HAProxy with ``config``, whose frontend is on ``port``, until it serves.

        Ready means a client connecting through it gets a node's greeting (and then says
        exit): a bounded poll, which also sees HAProxy exit (say, a bad configuration).
        """
        path = directory / "haproxy.cfg"
        path.write_text(config)
        process = await asyncio.create_subprocess_exec(
            haproxy_binary(), "-db", "-f", str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        proxy = cls(process, port)
        await proxy._wait_ready()
        return proxy

    async def _read_output(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(65536):
            self.output += chunk

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while loop.time() < deadline:
            try:
                probe = await LineClient.open(self.port)
            except ConnectionRefusedError:
                try:
                    # The pause between polls, which also sees HAProxy exit.
                    await asyncio.wait_for(self.process.wait(), POLL_INTERVAL)
                except TimeoutError:
                    continue
                break
            try:
                name = await probe.greeting()
                assert await probe.ask("exit") == f"Goodbye, {name}."
            finally:
                probe.close()
            return
        await self.stop()
        raise AssertionError(f"HAProxy did not get ready: {self.output.decode(errors='replace')}")

    async def stop(self) -> None:
        """Stop HAProxy at once (SIGTERM) and wait for it and its output."""
        if self.process.returncode is None:
            self.process.terminate()
        await asyncio.wait_for(self.process.wait(), WAIT)
        await asyncio.wait_for(self._reader, WAIT)


async def start_in_front_of(node_ports: Sequence[int], directory: Path) -> HAProxy:
    """HAProxy with the documented configuration on a free port, before ``node_ports``."""
    failures = []
    for _ in range(ATTEMPTS):
        port = free_port()
        try:
            config = render(documented_config(), port, node_ports)
            return await HAProxy.start(config, port, directory)
        except AssertionError as failure:
            failures.append(str(failure))
            if "cannot bind" not in str(failure):
                break
    raise AssertionError(f"HAProxy did not start: {failures}")
