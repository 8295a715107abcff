"""Run ``ackchat serve`` as a real process and follow its log.

The log (stderr) is read as it is written, by a task of the process's own, so that a
server that logs a lot never blocks on a full pipe, whether or not a test looks at it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from lineclient import WAIT, bounded

ROOT = Path(__file__).resolve().parent.parent
LISTENING = r"listening on 127\.0\.0\.1:(\d+)"


class ServerExitedError(AssertionError):
    """The server's log ended (it exited) before the line a test waited for."""

    def __init__(self, pattern: str, log: list[str]) -> None:
        super().__init__(f"log ended without {pattern!r}: {log}")
        self.log = log


class ServerProcess:
    """A server subprocess on 127.0.0.1, with its stderr log collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.port = 0
        # Every log line so far, and how far wait_for_log has looked.
        self.log: list[str] = []
        self._seen = 0
        self._logged = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read_log())

    @classmethod
    async def start(
        cls,
        *options: str,
        command: Sequence[str] = ("-m", "ackchat", "serve"),
        port: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> ServerProcess:
        """Start the server on ``port`` (0: any free one) and wait until it listens.

        ``env`` is added to this process's environment. Fails if the server exits first.
        """
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            "--port",
            str(port),
            *options,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        server = cls(process)
        listening = await server.wait_for_log(LISTENING)
        server.port = int(listening.group(1))
        return server

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read_log(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        while raw := await stderr.readline():
            async with self._logged:
                self.log.append(raw.decode(errors="replace").rstrip("\n"))
                self._logged.notify_all()
        async with self._logged:
            self._logged.notify_all()

    async def wait_for_log(self, pattern: str, seconds: float = WAIT) -> re.Match[str]:
        """The first log line after the last one matched that matches ``pattern``.

        Fails when the log ends (the process exited) or ``seconds`` pass without one.
        """

        async def search() -> re.Match[str]:
            async with self._logged:
                while True:
                    for index in range(self._seen, len(self.log)):
                        if match := re.search(pattern, self.log[index]):
                            self._seen = index + 1
                            return match
                    self._seen = len(self.log)
                    if self._reader.done():
                        raise ServerExitedError(pattern, self.log)
                    await self._logged.wait()

        try:
            return await bounded(search(), seconds)
        except TimeoutError:
            raise AssertionError(f"no log line like {pattern!r} in time: {self.log}") from None

    def send_signal(self, number: signal.Signals) -> None:
        """Send signal ``number`` (SIGHUP, SIGUSR1, SIGTERM, SIGKILL...) if it still runs."""
        if self.process.returncode is None:
            self.process.send_signal(number)

    async def wait(self, seconds: float = WAIT) -> int:
        """Wait for the process to exit and its log to end; return its exit code."""
        code = await bounded(self.process.wait(), seconds)
        await bounded(self._reader)
        return code

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def stop(self, seconds: float = WAIT) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``seconds``; the exit code."""
        self.send_signal(signal.SIGTERM)
        try:
            return await self.wait(seconds)
        except TimeoutError:
            self.kill()
            return await self.wait()
