"""Slow senders: a line that never ends is cut off by the line timeout; others carry on."""

from __future__ import annotations

from conftest import ClientFactory, ServerFactory
from test_server import status_line_of


async def test_a_line_that_never_ends_is_timed_out(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(line_timeout=0.3)
    slow = await connect(server)
    await slow.greeting()
    other = await connect(server)
    await other.greeting()
    await slow.send_raw(b"one byte at a ti")
    assert await other.ask("unaffected") == "unaffected ACK"
    await slow.send_raw(b"me")
    assert await slow.read_line() == "Line timeout: a line must end within 0.3 seconds. Goodbye."
    assert await slow.at_eof()
    assert (await status_line_of(other, "Client01")).endswith("(line timeout)")
    assert await other.ask("still fine") == "still fine ACK"


async def test_complete_lines_keep_the_timer_quiet(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(line_timeout=0.2, idle_timeout=0.6)
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"half")
    await client.send_raw(b" line\n")
    assert await client.read_line() == "half line ACK"
    # Only the idle timeout may end this quiet session now, not the line timeout.
    assert await client.read_line() == "Idle timeout: no input for 0.6 seconds. Goodbye."


async def test_an_overlong_line_dribbled_in_is_timed_out_too(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(line_timeout=0.3, max_line_bytes=10)
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"x" * 50)
    assert await client.read_line() == "Line timeout: a line must end within 0.3 seconds. Goodbye."


async def test_line_timeout_zero_turns_it_off(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(line_timeout=0, idle_timeout=0.5)
    client = await connect(server)
    await client.greeting()
    await client.send_raw(b"never finished")
    assert await client.read_line() == "Idle timeout: no input for 0.5 seconds. Goodbye."
