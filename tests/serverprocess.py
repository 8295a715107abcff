"""Run ``ackchat serve`` as a real process and follow its log."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from lineclient import WAIT, bounded

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """A server subprocess on an ephemeral port, with its stderr log read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.port = 0
        self.log: list[str] = []

    @classmethod
    async def start(
        cls, *options: str, command: Sequence[str] = ("-m", "ackchat", "serve")
    ) -> ServerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            "--port",
            "0",
            *options,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        server = cls(process)
        listening = await server.wait_for_log(r"listening on 127\.0\.0\.1:(\d+)")
        server.port = int(listening.group(1))
        return server

    async def wait_for_log(self, pattern: str) -> re.Match[str]:
        """Read log lines until one matches ``pattern``; fail at the end of the log."""
        assert self.process.stderr is not None
        while True:
            raw = await bounded(self.process.stderr.readline())
            if not raw:
                raise AssertionError(f"log ended without {pattern!r}: {self.log}")
            text = raw.decode().rstrip("\n")
            self.log.append(text)
            match = re.search(pattern, text)
            if match:
                return match

    async def wait(self) -> int:
        """Wait for the process to exit and return its exit code."""
        return await bounded(self.process.wait(), WAIT)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
