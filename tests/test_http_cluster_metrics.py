"""``/metrics`` of cluster nodes on a real redis-server: the Redis round trips, the faults
on the node's connections and the cross-node delivery lag its stream reader measures.

Two servers of one cluster run in this process with their admin API (tests/adminhttp.py):
known traffic moves the round trips, no fault, and the lag by one observation per event
each node's reader read (as many as the stream gained); every event carries the time
Redis wrote it; Redis stopped (its data saved) and started again moves the faults and
the reconnections, each by what happened. In embedded mode the Redis metrics are absent.
The lag's observation (fanout.py) and the deaf reader's bookkeeping (liveness.py) are
tested first, on numbers alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio

from ackchat.backend.redis.fanout import DELIVERY_LAG_BUCKETS, observe_lag
from ackchat.backend.redis.keys import ClusterKeys
from ackchat.backend.redis.liveness import Liveness
from ackchat.server.stats import LatencyHistogram
from adminhttp import AdminFactory, AdminUnderTest, admin_api
from backends import fresh_cluster, redis_time, redis_url
from lineclient import LineClient, eventually
from redisserver import RedisServer, redis_binary
from test_http_metrics import Samples, moved, samples

__all__ = ["admin_api"]  # The fixture, imported to be used here.

# The tests on Redis wait for heartbeats in real time: each runs on one event loop.
one_loop = pytest.mark.asyncio(loop_factories=["asyncio"])

# Heartbeat TTLs (seconds): a short one (a beat every 0.2 s), and one so long that no
# beat but the first comes during a test.
TTL = 0.6
QUIET_TTL = 60.0
# Cross-node direct messages sent in a row.
MESSAGES = 5
# Polls of a condition that answers at once, this many seconds apart.
POLL = 0.02
LAG = "ackchat_cross_node_delivery_lag_seconds"


def error(connection: str, kind: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of one series of ``ackchat_redis_errors_total``."""
    return ("ackchat_redis_errors_total", (("connection", connection), ("kind", kind)))


def reconnects(connection: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of one series of ``ackchat_redis_reconnects_total``."""
    return ("ackchat_redis_reconnects_total", (("connection", connection),))


def value(scraped: Samples, name: str) -> float:
    """The value of an unlabelled sample."""
    return scraped[(name, ())]


async def scrape(admin: AdminUnderTest) -> Samples:
    status, text = await admin.metrics()
    assert status == 200
    return samples(text)


async def cluster_node(
    admin_api: AdminFactory, url: str, cluster: str, node: str, ttl: float
) -> AdminUnderTest:
    """A server that is node ``node`` of ``cluster`` on the Redis at ``url``."""
    return await admin_api(
        redis=url, cluster_name=cluster, node_id=node, heartbeat_ttl=ttl, max_clients=10
    )


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop and start again."""
    server = RedisServer.start(redis_binary())
    yield server
    server.stop()


async def stream_entries(url: str, cluster: str) -> list[tuple[bytes, list[bytes]]]:
    """Every entry of the cluster's stream: its id and its fields, as a flat list in the
    order they were written (as the node's reader reads them)."""
    client = redis.asyncio.from_url(url)
    try:
        # As redis-py parses them: (id, {field: value}), the fields in order.
        entries: Any = await client.xrange(ClusterKeys(cluster).events)
    finally:
        await client.aclose()
    return [
        (entry_id, [item for pair in fields.items() for item in pair])
        for entry_id, fields in entries
    ]


# The lag's observation and the deaf reader's bookkeeping


def test_each_entry_read_is_observed_once_by_the_time_redis_wrote_it() -> None:
    lag = LatencyHistogram(DELIVERY_LAG_BUCKETS)
    observe_lag(
        lag,
        [
            (b"7-0", [b"h", b"d Client02", b"d", b"@7 hi\n", b"t", b"1000000"]),
            (b"8-0", [b"h", b"n a beat", b"d", b"", b"t", b"1000250"]),
        ],
        1000300,
    )
    assert (lag.count, lag.total) == (2, 0.3 + 0.05)
    assert lag.cumulative()[:4] == [(0.001, 0), (0.002, 0), (0.005, 0), (0.01, 0)]
    assert dict(lag.cumulative())[0.05] == 1


def test_a_clock_behind_redis_counts_no_lag() -> None:
    lag = LatencyHistogram(DELIVERY_LAG_BUCKETS)
    observe_lag(lag, [(b"3-0", [b"h", b"a 1", b"d", b"@3 x\n", b"t", b"5000"])], 4990)
    assert (lag.count, lag.total) == (1, 0.0)


def test_entries_without_a_time_are_not_observed() -> None:
    lag = LatencyHistogram(DELIVERY_LAG_BUCKETS)
    observe_lag(
        lag,
        [
            # Written by an older node: no t.
            (b"1-0", [b"h", b"a 1", b"d", b"@1 x\n"]),
            (b"2-0", [b"h", b"n a beat", b"d", b"t"]),
            (b"3-0", []),
            # A t that is not a time.
            (b"4-0", [b"h", b"a 1", b"d", b"@4 x\n", b"t", b"soon"]),
            (b"5-0", [b"h", b"a 1", b"d", b"@5 x\n", b"t", b"100"]),
        ],
        1100,
    )
    assert (lag.count, lag.total) == (1, 1.0)


def test_a_deaf_reader_is_counted_once_per_probe_it_missed() -> None:
    liveness = Liveness(6.0)
    liveness.beat_sent(5, 100.0)
    assert not liveness.deaf(4, 105.0)
    assert liveness.deaf(4, 106.0)
    liveness.reader_restarted()
    assert not liveness.deaf(4, 107.0)
    assert liveness.deaf_readers == 1


# Cluster nodes on a real Redis


@one_loop
async def test_embedded_mode_has_no_redis_metrics(admin_api: AdminFactory) -> None:
    admin = await admin_api()
    names = {name for name, _ in await scrape(admin)}
    assert "ackchat_clients_connected" in names
    assert not {name for name in names if name.startswith(("ackchat_redis", "ackchat_cross"))}


@one_loop
async def test_a_cross_node_message_moves_the_round_trips_and_no_fault(
    admin_api: AdminFactory, redis_server: RedisServer
) -> None:
    url, cluster = redis_url(redis_server.port), fresh_cluster()
    a = await cluster_node(admin_api, url, cluster, "a", QUIET_TTL)
    b = await cluster_node(admin_api, url, cluster, "b", QUIET_TTL)
    before = await scrape(a)
    assert value(before, "ackchat_redis_connected") == 1
    # The first beat, when the node joined.
    assert value(before, "ackchat_redis_heartbeats_total") == 1

    sender = await LineClient.open(a.server.port)
    await sender.read_block()
    # Admitted once b's reader passed every event so far, as a's was for the sender.
    recipient = await LineClient.open(b.server.port)
    await recipient.read_block()
    lags_before = [value(await scrape(node), f"{LAG}_count") for node in (a, b)]
    written = len(await stream_entries(url, cluster))
    for number in range(MESSAGES):
        await sender.send(f"/msg Client02 psst {number}")
        assert await sender.read_line() == f"/msg Client02 psst {number} ACK"
        assert (await recipient.read_line()).endswith(f"direct Client01>Client02: psst {number}")

    # Each message is one event, which both readers read (a's before the ACK) and nothing
    # else wrote meanwhile (no beat is due).
    assert len(await stream_entries(url, cluster)) - written == MESSAGES
    after = await scrape(a)
    lags_after = [value(after, f"{LAG}_count"), value(await scrape(b), f"{LAG}_count")]
    assert [lags_after[0] - lags_before[0], lags_after[1] - lags_before[1]] == [MESSAGES] * 2
    changes = moved(before, after)
    # At least the admission and the messages (and the housekeeping's, once a second).
    assert changes.pop(("ackchat_redis_round_trips_total", ())) >= 1 + MESSAGES
    assert {key[0] for key in changes} <= {
        "ackchat_clients_connected",
        "ackchat_connections_open",
        "ackchat_connections_total",
        "ackchat_lines_received_total",
        "ackchat_lines_sent_total",
        "ackchat_bytes_received_total",
        "ackchat_bytes_sent_total",
        "ackchat_chat_messages_total",
        "ackchat_command_duration_seconds_bucket",
        "ackchat_command_duration_seconds_count",
        "ackchat_command_duration_seconds_sum",
        "ackchat_event_loop_lag_seconds_bucket",
        "ackchat_event_loop_lag_seconds_count",
        "ackchat_event_loop_lag_seconds_sum",
        f"{LAG}_bucket",
        f"{LAG}_count",
        f"{LAG}_sum",
    }, "a fault, a reconnection or a beat counted for chat"
    assert value(after, "ackchat_cross_node_events_missed_total") == 0
    sender.close()
    recipient.close()


@one_loop
async def test_every_event_read_is_one_lag_observation_by_the_time_redis_wrote_it(
    admin_api: AdminFactory, redis_server: RedisServer
) -> None:
    url, cluster = redis_url(redis_server.port), fresh_cluster()
    started = await redis_time(url)
    a = await cluster_node(admin_api, url, cluster, "a", TTL)
    seen: list[tuple[Samples, int]] = []

    async def beaten_and_read() -> bool:
        scraped = await scrape(a)
        entries = len(await stream_entries(url, cluster))
        seen.append((scraped, entries))
        # A lone node's stream has its beats' notices alone, all read by its reader
        # (a scrape between a beat's answer and its delivery sees one more).
        return entries >= 3 and value(scraped, f"{LAG}_count") == entries

    await eventually(beaten_and_read, "three beats were answered and read", POLL)
    after, entries = seen[-1]
    assert value(after, "ackchat_redis_heartbeats_total") >= entries - 1
    assert after[(f"{LAG}_bucket", (("le", "+Inf"),))] == entries
    # On one host (one clock) the reader delivers a notice within a fraction of the TTL.
    assert value(after, f"{LAG}_sum") < TTL * entries

    # Every entry's last field is when Redis wrote it, in milliseconds by its clock.
    ended = await redis_time(url)
    for _, fields in await stream_entries(url, cluster):
        assert fields[-2] == b"t"
        assert math.floor(started * 1000) <= int(fields[-1]) <= math.ceil(ended * 1000)


@one_loop
async def test_redis_stopped_and_started_again_moves_the_faults_and_reconnections(
    admin_api: AdminFactory, own_redis: RedisServer
) -> None:
    a = await cluster_node(admin_api, redis_url(own_redis.port), fresh_cluster(), "a", TTL)
    before = await scrape(a)
    assert [before[error("commands", kind)] for kind in ("connection_lost", "timeout")] == [0, 0]
    assert before[reconnects("commands")] == before[reconnects("reader")] == 0

    own_redis.shut_down(save=True)
    down: list[Samples] = []

    async def refused() -> bool:
        now = await scrape(a)
        down.append(now)
        return (
            value(now, "ackchat_redis_connected") == 0
            and now[error("commands", "connect_failed")] >= 2
            and now[error("reader", "connection_lost")] == 1
        )

    await eventually(refused, "the node lost Redis and failed to reconnect", POLL)
    assert down[-1][error("commands", "connection_lost")] == 1

    own_redis.start_again()

    async def back() -> bool:
        now = await scrape(a)
        down.append(now)
        return value(now, "ackchat_redis_connected") == 1 and now[reconnects("reader")] >= 1

    await eventually(back, "the node reconnected", POLL)
    after = down[-1]
    assert after[reconnects("commands")] == 1
    assert after[error("commands", "connection_lost")] == 1
    assert after[error("reader", "connection_lost")] == 1
    for kind in ("timeout", "error_reply"):
        assert after[error("commands", kind)] == 0
    assert after[error("reader", "timeout")] == after[error("reader", "deaf")] == 0

    # Back to work: a client is admitted and beats' notices are read again.
    client = await LineClient.open(a.server.port)
    await client.read_block()
    read = value(after, f"{LAG}_count")

    async def read_again() -> bool:
        return value(await scrape(a), f"{LAG}_count") > read

    await eventually(read_again, "a beat's notice was read after the outage", POLL)
    client.close()
