"""Several ``ackchat serve`` processes at once, as the nodes of one service, for tests.

Each node is a real process (``sys.executable -m ackchat serve``, see
:mod:`serverprocess`), so that signals are real: SIGKILL leaves no goodbye, SIGHUP
reloads, SIGUSR1 drains. Every node gets its own free port of 127.0.0.1, passed as
``--port`` so that the node knows its real address (cluster mode names a node after
it), or all share one with ``--reuse-port``. A node counts as ready once it logs that it
listens: connecting to find out would make a client in its cache. Extra options (for
cluster mode, ``--redis URL``) and environment variables are passed through. The
``nodes`` fixture (conftest.py) stops every node after the test.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping, Sequence

from redisserver import free_port
from serverprocess import ServerExitedError, ServerProcess

# Free ports tried for a node before giving up, in case another process takes the one
# chosen between choosing and binding it.
ATTEMPTS = 3
# Seconds a node has to exit after SIGTERM at the end of a test before it is killed.
STOP_TIMEOUT = 10.0


class Nodes:
    """The nodes a test started, in the order it started them."""

    def __init__(self) -> None:
        self.started: list[ServerProcess] = []

    def __getitem__(self, index: int) -> ServerProcess:
        return self.started[index]

    def __len__(self) -> int:
        return len(self.started)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.started]

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.started]

    async def start(
        self, count: int, *options: str, env: Mapping[str, str] | None = None
    ) -> list[ServerProcess]:
        """Start ``count`` nodes with the same options, each on a port of its own."""
        return list(
            await asyncio.gather(*(self.start_node(*options, env=env) for _ in range(count)))
        )

    async def start_each(
        self, *option_sets: Sequence[str], env: Mapping[str, str] | None = None
    ) -> list[ServerProcess]:
        """Start one node for each set of options, all at once, each on a port of its own;
        they come in the order given, here and in ``started``."""
        before = len(self.started)
        each = await asyncio.gather(
            *(self.start_node(*options, env=env) for options in option_sets)
        )
        self.started[before:] = each
        return list(each)

    async def start_sharing(
        self, count: int, *options: str, env: Mapping[str, str] | None = None
    ) -> list[ServerProcess]:
        """Start ``count`` nodes that all listen on one port, with ``--reuse-port``."""
        first = await self.start_node("--reuse-port", *options, env=env)
        others = [
            self.start_node("--reuse-port", *options, port=first.port, env=env)
            for _ in range(count - 1)
        ]
        return [first, *await asyncio.gather(*others)]

    async def start_node(
        self, *options: str, port: int = 0, env: Mapping[str, str] | None = None
    ) -> ServerProcess:
        """Start one node on ``port`` (0: a free one) and return it once it listens."""
        failures: list[list[str]] = []
        for _ in range(1 if port else ATTEMPTS):
            try:
                node = await ServerProcess.start(*options, port=port or free_port(), env=env)
            except ServerExitedError as exited:
                failures.append(exited.log)
                if not any("already in use" in line for line in exited.log):
                    break
                continue
            self.started.append(node)
            return node
        raise AssertionError(f"the node did not start: {failures}")

    def signal(self, index: int, number: signal.Signals) -> None:
        """Send signal ``number`` to node ``index`` (SIGKILL, SIGHUP, SIGUSR1...)."""
        self.started[index].send_signal(number)

    async def stop_all(self) -> list[int]:
        """SIGTERM every node (SIGKILL if one lingers) and wait; their exit codes."""
        return list(await asyncio.gather(*(node.stop(STOP_TIMEOUT) for node in self.started)))
