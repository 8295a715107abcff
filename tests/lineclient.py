"""A minimal test client over asyncio streams, with a bound on every wait."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from ackchat.protocol.replies import END_OF_BLOCK

# Every wait in the tests is bounded by this many seconds, so a hang fails instead.
WAIT = 10.0

T = TypeVar("T")


async def bounded(awaitable: Awaitable[T], seconds: float = WAIT) -> T:
    """Await with the suite's time bound."""
    return await asyncio.wait_for(awaitable, seconds)


class Lines(ABC):
    """What a test reads of the line protocol, whatever carries it: blocks, the greeting,
    replies between chat events (TCP here, WebSocket in wsclient.py)."""

    @abstractmethod
    async def send(self, text: str) -> None:
        """Send one line."""

    @abstractmethod
    async def read_line(self) -> str:
        """The next line (EOFError once there are no more)."""

    async def read_block(self) -> list[str]:
        """The lines of a multi-line reply, without its end marker."""
        lines: list[str] = []
        while (text := await self.read_line()) != END_OF_BLOCK:
            lines.append(text)
        return lines

    async def greeting(self) -> str:
        """Read the greeting and return the name it gives."""
        block = await self.read_block()
        match = re.fullmatch(r"Welcome! You are (\S+)\.", block[0])
        assert match is not None, block
        return match.group(1)

    async def ask(self, text: str) -> str:
        await self.send(text)
        return await self.read_line()

    async def reply(self) -> str:
        """The next line that is not a chat event (those may come in between replies)."""
        while (text := await self.read_line()).startswith("@"):
            pass
        return text

    async def reply_block(self) -> list[str]:
        """The next block reply, skipping chat events that arrive before it."""
        first = await self.reply()
        return [first, *await self.read_block()]


class LineClient(Lines):
    """Sends lines and reads the server's lines, blocks and end of stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> LineClient:
        reader, writer = await bounded(asyncio.open_connection(host, port, limit=2**24))
        return cls(reader, writer)

    @property
    def local_port(self) -> int:
        port: int = self.writer.get_extra_info("sockname")[1]
        return port

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await bounded(self.writer.drain())

    async def send(self, text: str) -> None:
        await self.send_raw(text.encode() + b"\n")

    async def read_line(self) -> str:
        data = await bounded(self.reader.readline())
        if not data.endswith(b"\n"):
            raise EOFError(f"connection ended after {data!r}")
        return data[:-1].decode()

    async def status(self, show_all: bool = False) -> list[str]:
        await self.send("status all" if show_all else "status")
        return await self.read_block()

    async def at_eof(self) -> bool:
        """Whether the server closed the connection (after any unread bytes)."""
        rest = await bounded(self.reader.read())
        return rest == b""

    def stop_reading(self) -> None:
        """Leave what the server sends in the socket, as a client that does not read."""
        cast(asyncio.Transport, self.writer.transport).pause_reading()

    def start_reading(self) -> None:
        cast(asyncio.Transport, self.writer.transport).resume_reading()

    def close(self) -> None:
        self.writer.close()

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


async def eventually(
    probe: Callable[[], Awaitable[bool]], what: str, interval: float = 0.0
) -> None:
    """Repeat ``probe`` until it is true, failing with ``what`` after the suite's bound.

    Each probe is a round trip or at least one turn of the event loop, so this polls
    at the pace of the server instead of sleeping for a guessed time; ``interval`` spaces
    out probes that answer at once (a process's state, a Redis key).
    """
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(interval)


async def flood_without_reading(port: int, chunk: bytes, limit: int) -> int:
    """Send ``chunk`` again and again, never reading, until the server cuts us off or
    ``limit`` bytes are sent; returns how many bytes were sent."""
    loop = asyncio.get_running_loop()
    flooder = socket.socket()
    flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flooder.setblocking(False)
    sent = 0
    try:
        await bounded(loop.sock_connect(flooder, ("127.0.0.1", port)))
        while sent < limit:
            await bounded(loop.sock_sendall(flooder, chunk))
            sent += len(chunk)
    except OSError:
        pass
    finally:
        flooder.close()
    return sent


async def renamed(client: LineClient, name: str) -> LineClient:
    """``client`` once greeted and renamed ``name`` with ``/nick``, as a user of ``nc`` is."""
    await client.greeting()
    assert await client.ask(f"/nick {name}") == f"You are now {name}."
    return client
