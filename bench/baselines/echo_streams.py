"""A minimal line echo server on asyncio streams: each line comes back with `` ACK``.

A baseline for ``bench/compare.py``: what the plainest asyncio code costs. No greeting.
"""

from __future__ import annotations

import argparse
import asyncio


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every line until the client closes (or sends an over-long line)."""
    try:
        while line := await reader.readline():
            if not line.endswith(b"\n"):
                break
            writer.write(line.rstrip(b"\r\n") + b" ACK\n")
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` forever; prints the port once listening."""
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Parse ``--port`` and serve on the default asyncio event loop."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=1234, help="TCP port; 0 for any free one")
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
