"""A TCP relay in front of a real redis-server, for faults that Redis itself cannot make.

Every connection to the relay's port is relayed to Redis byte for byte, so the nodes
behind it speak to the real server. A test can then make chosen connections *hang*:
they stay open but nothing passes either way any more, as when a NAT or a firewall drops
a connection's state (a node's reader that is connected but hears nothing). A
connection is chosen by what its client sent first: redis-py names each connection
(``CLIENT SETNAME``) in its first packet. Or the relay *refuses*: it cuts every
connection and closes each new one at once, as a Redis that is down would, noting when
each attempt came and from whom.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass(eq=False)
class _Relayed:
    """One client's connection and the one to Redis it is relayed to."""

    first: bytes
    # Set while bytes pass; cleared when the connection hangs.
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class RedisProxy:
    """Relays 127.0.0.1:``port`` to the Redis on ``redis_port``."""

    def __init__(self, redis_port: int) -> None:
        self._redis_port = redis_port
        self._server: asyncio.Server | None = None
        self._relayed: list[_Relayed] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusing = False
        # Connections refused while refusing: when (loop time), and their first packet.
        self._refused: list[tuple[float, bytes]] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def hang(self, first_contains: bytes) -> int:
        """Make every open connection whose first packet holds ``first_contains`` hang;
        returns how many. Connections made later flow."""
        hung = [relayed for relayed in self._relayed if first_contains in relayed.first]
        for relayed in hung:
            relayed.flowing.clear()
        return len(hung)

    def refuse(self) -> None:
        """Cut every connection, and close every new one at once."""
        self._refusing = True
        for relayed in self._relayed:
            for writer in relayed.writers:
                writer.close()
        self._relayed.clear()

    def let_in(self) -> None:
        """Relay new connections again."""
        self._refusing = False

    def attempts(self, first_contains: bytes) -> list[float]:
        """When the connections refused whose first packet holds ``first_contains`` came."""
        return [when for when, first in self._refused if first_contains in first]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for relayed in self._relayed:
            for writer in relayed.writers:
                writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(CHUNK)
        if self._refusing:
            self._refused.append((asyncio.get_running_loop().time(), first))
            writer.close()
            return
        upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self._redis_port)
        relayed = _Relayed(first, writers=[writer, upstream])
        relayed.flowing.set()
        self._relayed.append(relayed)
        upstream.write(first)
        for source, sink in ((reader, upstream), (upstream_reader, writer)):
            task = asyncio.create_task(self._pump(relayed, source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, relayed: _Relayed, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(CHUNK):
                # A hung connection keeps what it read and never passes it on.
                await relayed.flowing.wait()
                sink.write(data)
                await sink.drain()
        for writer in relayed.writers:
            writer.close()
