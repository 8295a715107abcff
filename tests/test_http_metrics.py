"""``/metrics`` over real sockets: scraped, then known traffic, then scraped again; every
counter must have moved by exactly what that traffic was."""

from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families

from ackchat.http.metrics import LoopLag
from ackchat.protocol import replies
from adminhttp import AdminFactory, admin_api
from lineclient import LineClient, bounded

__all__ = ["admin_api"]  # The fixture, imported to be used here.

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples) -> Samples:
    """How much each ackchat sample moved between two scrapes (those that did)."""
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key[0].startswith("ackchat_") and after[key] != before.get(key, 0.0)
    }


class CountingClient:
    """A line client that counts the bytes it sends and reads."""

    def __init__(self, client: LineClient) -> None:
        self.client = client
        self.sent = 0
        self.read = 0

    async def send(self, text: str) -> None:
        self.sent += len(text.encode()) + 1
        await self.client.send(text)

    async def line(self) -> str:
        text = await self.client.read_line()
        self.read += len(text.encode()) + 1
        return text

    async def block(self) -> list[str]:
        lines = []
        while (text := await self.line()) != ".":
            lines.append(text)
        return lines


async def test_counters_move_by_exactly_the_traffic_made(admin_api: AdminFactory) -> None:
    admin = await admin_api(max_clients=3)
    status, text = await admin.metrics()
    assert status == 200
    before = samples(text)
    assert before[("ackchat_clients_connected", ())] == 0

    clients = [CountingClient(await LineClient.open(admin.server.port)) for _ in range(3)]
    for client in clients:
        await client.block()
    lines = 5
    for client in clients:
        for number in range(lines):
            await client.send(f"line {number}")
        for number in range(lines):
            assert await client.line() == f"line {number} ACK"
    first, second, third = clients
    await first.send("/msg Client02 psst")
    assert await first.line() == "/msg Client02 psst ACK"
    assert (await second.line()).endswith("direct Client01>Client02: psst")
    full = CountingClient(await LineClient.open(admin.server.port))
    assert await full.line() == replies.SERVER_FULL
    assert await full.client.at_eof()
    await third.send("exit")
    assert await third.line() == "Goodbye, Client03."
    assert (await admin.call("DELETE", "/api/clients/Client02"))[0] == 200
    assert await second.line() == replies.KICKED
    assert await second.client.at_eof()

    _, text = await admin.metrics()
    after = samples(text)
    everyone = [*clients, full]
    command_counts = {
        key: value
        for key, value in moved(before, after).items()
        if key[0] == "ackchat_command_duration_seconds_count"
    }
    assert command_counts == {
        ("ackchat_command_duration_seconds_count", (("command", "msg"),)): 1,
        ("ackchat_command_duration_seconds_count", (("command", "exit"),)): 1,
    }
    # Timings are checked above; the open sockets gauge counts closing ones too, below.
    changes = {
        key: value
        for key, value in moved(before, after).items()
        if not key[0].startswith(
            ("ackchat_command_duration", "ackchat_event_loop", "ackchat_connections_open")
        )
    }
    assert changes == {
        ("ackchat_clients_connected", ()): 1,
        ("ackchat_connections_total", ()): 3,
        ("ackchat_connections_rejected_total", (("reason", "server_full"),)): 1,
        ("ackchat_disconnections_total", (("reason", "exit"),)): 1,
        ("ackchat_disconnections_total", (("reason", "kicked"),)): 1,
        # 5 lines from each of 3 clients, the /msg and the exit.
        ("ackchat_lines_received_total", ()): 3 * lines + 2,
        # 3 greetings of 4 lines, 15 ACKs, the /msg's ACK and its delivery, the goodbye,
        # the kick's farewell, and the full server's line.
        ("ackchat_lines_sent_total", ()): 3 * 4 + 3 * lines + 2 + 1 + 1 + 1,
        ("ackchat_bytes_received_total", ()): sum(client.sent for client in everyone),
        ("ackchat_bytes_sent_total", ()): sum(client.read for client in everyone),
        ("ackchat_chat_messages_total", (("scope", "direct"),)): 1,
    }
    assert after[("ackchat_connections_open", ())] >= 1
    assert after[("ackchat_max_clients", ())] == 3
    assert ("ackchat_event_loop_lag_seconds_count", ()) in after
    assert ("process_resident_memory_bytes", ()) in after
    for client in everyone:
        client.client.close()


async def test_metrics_are_the_prometheus_text_format(admin_api: AdminFactory) -> None:
    admin = await admin_api()
    async with admin.session.get(admin.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    assert "# TYPE ackchat_disconnections_total counter" in text
    assert "# TYPE ackchat_command_duration_seconds histogram" in text
    assert 'ackchat_command_duration_seconds_bucket{command="status",le="+Inf"} 0.0' in text


class WatchedLag(LoopLag):
    """A loop-lag timer that says when it fired."""

    def __init__(self, interval: float) -> None:
        super().__init__(interval)
        self.fired = asyncio.Event()

    def tick(self, now: float) -> float:
        lag = super().tick(now)
        self.fired.set()
        return lag


async def test_loop_lag_is_how_late_its_timer_runs() -> None:
    lag = WatchedLag(interval=0.01)
    lag.start()
    try:
        # Hold the loop, as a slow callback would: the timer fires late by about as much.
        held_until = time.monotonic() + 0.05
        while time.monotonic() < held_until:
            pass
        await bounded(lag.fired.wait())
    finally:
        lag.stop()
    assert lag.histogram.count >= 1
    assert lag.histogram.total >= 0.03
