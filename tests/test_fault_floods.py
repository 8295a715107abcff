"""Floods: the per-client rate limit, and a client that sends without ever reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ClientFactory, ServerFactory
from lineclient import LineClient, flood_without_reading
from serverprocess import ServerProcess
from test_server import status_line_of


async def test_lines_over_the_rate_get_an_error_and_nothing_else_is_lost(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(rate_limit=1, rate_burst=3, rate_strikes=50)
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"".join(b"m%d\n" % n for n in range(5)))
    replies = [await client.read_line() for _ in range(5)]
    assert replies[:3] == ["m0 ACK", "m1 ACK", "m2 ACK"]
    assert replies[3:] == ["ERROR rate limit: over 1 lines per second; the line was discarded."] * 2


async def test_a_client_that_keeps_flooding_is_disconnected(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(rate_limit=1, rate_burst=2, rate_strikes=5)
    flooder = await connect(server)
    await flooder.greeting()
    other = await connect(server)
    await other.greeting()
    await flooder.send_raw(b"flood\n" * 100)
    lines = [await flooder.read_line() for _ in range(2 + 4 + 1)]
    assert lines[-1] == "Too many lines over the rate limit. Goodbye."
    assert await flooder.at_eof()
    assert (await status_line_of(other, "Client01")).endswith("(rate limited)")
    assert await other.ask("served") == "served ACK"


def rss_bytes(pid: int) -> int:
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith("VmRSS:"):
            return int(text.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_memory_stays_flat_under_a_100_mb_flood_from_a_client_that_never_reads() -> None:
    server = await ServerProcess.start("--rate-limit", "0", "--log-level", "debug")
    try:
        warmup = await LineClient.open(server.port)
        await warmup.greeting()
        for _ in range(200):
            await warmup.ask("x" * 1000)
        warmup.close()
        before = rss_bytes(server.process.pid)
        flooded = 0
        # Each flooder is cut off after about 1 MB of unsent replies; the next one goes on.
        for _ in range(200):
            chunk = b"f" * 8191 + b"\n"
            flooded += await flood_without_reading(server.port, chunk, 100_000_000 - flooded)
            if flooded >= 100_000_000:
                break
        await server.wait_for_log(r"Client\d+ disconnected \(slow consumer\)")
        growth = rss_bytes(server.process.pid) - before
        assert flooded >= 100_000_000
        assert growth < 20_000_000, f"server memory grew by {growth} bytes"
        probe = await LineClient.open(server.port)
        await probe.greeting()
        assert await probe.ask("alive") == "alive ACK"
    finally:
        server.kill()
        await server.wait()
