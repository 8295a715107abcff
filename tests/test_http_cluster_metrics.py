"""``/metrics`` of cluster nodes on a real redis-server: the Redis round trips, the faults
on the node's connections and the cross-node delivery lag its heartbeats measure.

Two servers of one cluster run in this process with their admin API (tests/adminhttp.py):
known traffic moves the round trips and no fault; every heartbeat answered is one
observation of the lag, once the node's reader delivered its notice; Redis stopped (its
data saved) and started again moves the faults and the reconnections, each by what
happened. In embedded mode the Redis metrics are absent. The lag's bookkeeping
(liveness.py) is tested first, on numbers alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ackchat.backend.redis.liveness import Liveness
from adminhttp import AdminFactory, AdminUnderTest, admin_api
from backends import fresh_cluster, redis_url
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


# The lag's bookkeeping


def test_a_beat_is_measured_once_when_the_reader_delivers_it() -> None:
    liveness = Liveness(6.0)
    liveness.beat_sent(5, 10.0)
    liveness.heard(4, 10.1)
    assert liveness.lag.count == 0
    liveness.heard(6, 10.25)
    assert (liveness.lag.count, liveness.lag.total) == (1, 0.25)
    liveness.heard(7, 11.0)
    assert liveness.lag.count == 1
    # Heard before its answer came: no lag.
    liveness.beat_sent(7, 11.5)
    assert (liveness.lag.count, liveness.lag.total) == (2, 0.25)
    assert liveness.beats == 2


def test_beats_unheard_when_the_reader_starts_afresh_are_not_measured() -> None:
    liveness = Liveness(6.0)
    liveness.heard(10, 1.0)
    liveness.beat_sent(11, 1.0)
    liveness.reader_restarted()
    liveness.heard(11, 2.0)
    # A new run's stream: its ids are not those of the beats waiting.
    liveness.beat_sent(12, 2.0)
    liveness.heard(3, 3.0)
    liveness.heard(20, 4.0)
    assert liveness.lag.count == 0
    assert liveness.beats == 2


def test_beats_delivered_before_the_reader_was_watched_are_not_measured() -> None:
    liveness = Liveness(6.0)
    liveness.beat_sent(3, 1.0)
    liveness.beat_sent(8, 2.0)
    liveness.watch(5)
    liveness.heard(9, 2.5)
    assert (liveness.lag.count, liveness.lag.total) == (1, 0.5)


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
    recipient = await LineClient.open(b.server.port)
    await recipient.read_block()
    await sender.send("/msg Client02 psst")
    assert await sender.read_line() == "/msg Client02 psst ACK"
    assert (await recipient.read_line()).endswith("direct Client01>Client02: psst")

    after = await scrape(a)
    changes = moved(before, after)
    # At least the admission and the message (and the housekeeping's, once a second).
    assert changes.pop(("ackchat_redis_round_trips_total", ())) >= 2
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
    }, "a fault, a reconnection, a beat or a lag counted for chat"
    assert value(after, "ackchat_cross_node_events_missed_total") == 0
    sender.close()
    recipient.close()


@one_loop
async def test_every_heartbeat_answered_is_one_lag_observation(
    admin_api: AdminFactory, redis_server: RedisServer
) -> None:
    a = await cluster_node(admin_api, redis_url(redis_server.port), fresh_cluster(), "a", TTL)
    before = await scrape(a)
    seen: list[Samples] = []

    async def beaten_and_heard() -> bool:
        after = await scrape(a)
        seen.append(after)
        beats = moved(before, after).get(("ackchat_redis_heartbeats_total", ()), 0)
        lags = moved(before, after).get((f"{LAG}_count", ()), 0)
        # A scrape between a beat's answer and its delivery sees one beat more.
        return beats >= 3 and lags == beats

    await eventually(beaten_and_heard, "three beats were answered and heard", POLL)
    after = seen[-1]
    count = value(after, f"{LAG}_count")
    assert after[(f"{LAG}_bucket", (("le", "+Inf"),))] == count
    # On one host the reader delivers a beat within a fraction of the TTL.
    assert value(after, f"{LAG}_sum") - value(before, f"{LAG}_sum") < TTL * count


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

    # Back to work: a client is admitted and beats are heard again.
    client = await LineClient.open(a.server.port)
    await client.read_block()
    heard = value(after, f"{LAG}_count")

    async def heard_again() -> bool:
        return value(await scrape(a), f"{LAG}_count") > heard

    await eventually(heard_again, "a beat was heard after the outage", POLL)
    client.close()
