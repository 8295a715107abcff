"""The dashboard's feed: samples for the charts, the bounded view of many clients, the
server-sent events of ``GET /api/events``, and the pages served with their policy."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from ackchat.http.app import PAGE_POLICY
from ackchat.http.live import (
    CHECK_INTERVAL,
    PUSH_INTERVAL,
    STEADY_AFTER,
    PushSchedule,
    Samples,
)
from ackchat.http.views import LocalClient, dashboard_view
from ackchat.records import DisconnectReason, SessionRecord, StatusSnapshot
from adminhttp import TOKEN, AdminFactory, admin_api
from conftest import ClientFactory
from lineclient import bounded

__all__ = ["admin_api"]  # The fixture, imported to be used here.


def looks(schedule: PushSchedule[int], seen: list[tuple[float, int]]) -> list[float]:
    """The times of the looks that pushed, of ``(time, what was seen)``."""
    return [now for now, latest in seen if schedule.due(now, latest)]


def test_the_push_schedule_tests_assume_its_intervals() -> None:
    assert (CHECK_INTERVAL, PUSH_INTERVAL, STEADY_AFTER) == (0.25, 2.0, 1.0)


def test_a_change_is_pushed_at_the_next_look_and_nothing_else_for_two_seconds() -> None:
    schedule: PushSchedule[int] = PushSchedule(0.0)
    seen = [(0.25, 1), (0.5, 1), (0.75, 2), *((0.25 * step, 2) for step in range(4, 12))]
    assert looks(schedule, seen) == [0.25, 0.75, 2.75]


def test_changes_at_every_look_are_pushed_every_two_seconds_after_their_first() -> None:
    schedule: PushSchedule[int] = PushSchedule(0.0)
    churn = [(0.25 * step, step) for step in range(1, 23)]  # a change at every look to 5.5
    assert looks(schedule, churn) == [0.25, 0.5, 0.75, 1.0, 3.0, 5.0]
    # The first look that sees no new change pushes the last ones at once.
    assert looks(schedule, [(5.75, 22), (6.0, 22)]) == [5.75]
    # A change after that pause is pushed at once again.
    assert looks(schedule, [(6.25, 23)]) == [6.25]


def test_the_schedule_pushes_whatever_it_sees_two_seconds_after_the_last_push() -> None:
    schedule: PushSchedule[int] = PushSchedule(0.0)
    assert looks(schedule, [(0.25, 0), (0.5, 0)]) == [0.25]
    assert looks(schedule, [(2.0, 0), (2.25, 0), (2.5, 0)]) == [2.25]


def test_samples_are_rates_from_the_running_totals() -> None:
    samples = Samples(kept=3)
    samples.add(100.0, lines=50, connected=1, rejected=0)
    assert samples.after(0) == []
    samples.add(101.0, lines=250, connected=2, rejected=1)
    samples.add(103.0, lines=250, connected=2, rejected=5)
    samples.add(104.0, lines=260, connected=3, rejected=5)
    samples.add(105.0, lines=261, connected=3, rejected=5)
    kept = samples.after(0)
    assert [(s.time, s.lines_per_second, s.connected, s.rejected_per_second) for s in kept] == [
        (103.0, 0.0, 2, 2.0),
        (104.0, 10.0, 3, 0.0),
        (105.0, 1.0, 3, 0.0),
    ]
    assert [sample.time for sample in samples.after(103.0)] == [104.0, 105.0]


def records(connected: int, departed: int) -> list[SessionRecord]:
    """Sessions as a snapshot holds them: connected ones, then departed ones."""
    here = [
        SessionRecord(n, f"Client{n:05d}", f"10.0.{n // 250}.{n % 250}:5000", 1000.0 + n)
        for n in range(1, connected + 1)
    ]
    gone = [
        SessionRecord(
            n, f"Gone{n}", "10.9.9.9:1", 10.0, 500.0 + n * (-1) ** n, DisconnectReason.KICKED
        )
        for n in range(1, departed + 1)
    ]
    return here + gone


def view(snapshot: StatusSnapshot, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "show_addresses": True,
        "query": "",
        "limit": 100,
        "departures": 5,
        "room_limit": 2,
        "members": 2,
    }
    who = [("Client00001", ["#a", "#b"]), ("Client00002", ["#b"]), ("Client00003", ["#b"])]
    rooms = [("#a", 1), ("#b", 3), ("#c", 0)]
    local = {"client00002": LocalClient(4.5, 1, 2, 3, 4)}
    return dashboard_view(snapshot, who, rooms, local, **(options | overrides))


def test_the_dashboard_is_bounded_with_ten_thousand_clients() -> None:
    snapshot = StatusSnapshot(records(10_000, 8), 10_000, 10_000, 10_008, 3, 0, 0)
    started = time.perf_counter()
    shown = view(snapshot)
    assert time.perf_counter() - started < 0.1
    clients = shown["clients"]
    assert (clients["matching"], len(clients["shown"])) == (10_000, 100)
    first, second = clients["shown"][:2]
    assert (first["name"], first["rooms"], first["idle_seconds"]) == (
        "Client00001",
        ["#a", "#b"],
        None,
    )
    assert (second["idle_seconds"], second["lines_in"]) == (4.5, 1)
    assert [gone["name"] for gone in shown["departures"]] == [f"Gone{n}" for n in (8, 6, 4, 2, 1)]
    assert shown["rooms"] == {
        "count": 3,
        "shown": [
            {"name": "#b", "members": 3, "names": ["Client00001", "Client00002"]},
            {"name": "#a", "members": 1, "names": ["Client00001"]},
        ],
    }
    found = view(snapshot, query="client0999")["clients"]
    assert found["matching"] == 10
    assert [client["name"] for client in found["shown"]][:2] == ["Client09990", "Client09991"]
    by_address = view(snapshot, query="10.0.39.")["clients"]
    assert by_address["matching"] == 250
    # A hidden address is not searched: the number of matches would give it away.
    hidden = view(snapshot, query="10.0.39.", show_addresses=False)["clients"]
    assert hidden == {"query": "10.0.39.", "matching": 0, "shown": []}


async def next_update(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The next server-sent event's data."""
    event = await bounded(response.content.readuntil(b"\n\n"))
    kind, data = event.decode().rstrip("\n").split("\n")
    assert kind == "event: update"
    update: dict[str, Any] = json.loads(data.removeprefix("data: "))
    return update


async def test_the_feed_pushes_at_once_then_as_clients_come_and_go(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api()
    async with admin.session.get(admin.url + "/api/events") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await next_update(response)
        assert (first["connected"], first["clients"]["shown"], first["error"]) == (0, [], None)
        assert first["limits"]["max_clients"] == 3
        assert first["limits"]["max_line_bytes"] == 65536
        client = await connect(admin.server)
        await client.greeting()
        arrived = time.monotonic()
        while (update := await next_update(response))["connected"] == 0:
            pass
        assert time.monotonic() - arrived < CHECK_INTERVAL + 0.5
        (shown,) = update["clients"]["shown"]
        assert shown["name"] == "Client01"
        assert shown["address"] == f"127.0.0.1:{client.local_port}"
        assert await client.ask("exit") == "Goodbye, Client01."
        while not (update := await next_update(response))["departures"]:
            pass
        assert [(gone["name"], gone["reason"]) for gone in update["departures"]] == [
            ("Client01", "exit")
        ]
        # Samples for the charts come about once a second, each only once.
        times = [sample[0] for sample in update["samples"]]
        later = await next_update(response)
        assert all(sample[0] > max(times, default=0) for sample in later["samples"])


async def test_a_search_bounds_the_clients_of_the_feed(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api()
    for _ in range(3):
        await (await connect(admin.server)).greeting()
    url = admin.url + "/api/events?q=client0&limit=2"
    async with admin.session.get(url) as response:
        update = await next_update(response)
    assert update["clients"]["matching"] == 3
    assert [client["name"] for client in update["clients"]["shown"]] == ["Client01", "Client02"]
    status, body = await admin.call("GET", "/api/events?limit=0")
    assert (status, body) == (
        400,
        {"error": "limit must be an integer from 1 to 500, got '0'", "field": "limit"},
    )


@pytest.mark.parametrize("path", ["/", "/chat", "/static/dashboard.js", "/static/ackchat.css"])
async def test_the_pages_are_open_and_served_with_their_policy(
    admin_api: AdminFactory, path: str
) -> None:
    admin = await admin_api(admin_read_token=True)
    async with admin.session.get(admin.url + path) as response:
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == PAGE_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "html" in response.content_type or path.startswith("/static/")
    assert (await admin.call("GET", "/api/events", token=None))[0] == 401
    async with admin.session.get(
        admin.url + "/api/events", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        assert (await next_update(response))["connected"] == 0
