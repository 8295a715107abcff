"""A minimal line echo server: an asyncio.Protocol under uvloop; each line gets `` ACK``.

A baseline for ``bench/compare.py``: about the least Python can do per message. Lines
split across reads are joined; all the replies to one read go out in one write.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import uvloop


class Echo(asyncio.Protocol):
    """One connection: split the stream into lines and answer each."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._partial = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        if self._partial:
            data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if lines:
            self._transport.write(b"".join([line.rstrip(b"\r") + b" ACK\n" for line in lines]))


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` forever; prints the port once listening."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=4096)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Parse ``--port`` and serve under uvloop."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=1234, help="TCP port; 0 for any free one")
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
