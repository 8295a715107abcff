"""``/metrics``: the server's counts in the Prometheus exposition, read when scraped.

Nothing here runs on the chat server's hot path. The server counts in plain integers
(:class:`~ackchat.server.session.ServerCounters`, each session's traffic); a custom
collector reads them only when Prometheus scrapes, and prometheus-client writes the
exposition. Each server has a registry of its own, so that several servers in one
process (the tests) do not share metrics. Every metric is this node's: in a cluster,
Prometheus scrapes each node and sums across them.

The event loop's lag is measured by :class:`LoopLag`, a timer that notes how late it
fires: when callbacks hog the loop, every client waits that long too.

In cluster mode there are also the node's links to Redis (:class:`RedisLinks`, read from
the backend's :attr:`~ackchat.backend.redis.backend.RedisBackend.links`): the round trips
of its connection for operations, each connection's faults and reconnections, and the
cross-node delivery lag its stream reader measures (fanout.py). In embedded mode those
metrics are absent: there is no Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ackchat.admission import Refusal
from ackchat.backend.interface import Backend
from ackchat.backend.redis.liveness import LOST, TIMEOUT
from ackchat.records import ChatLoss, DisconnectReason
from ackchat.server.assembly import ChatServer
from ackchat.server.stats import LatencyHistogram

if TYPE_CHECKING:
    from ackchat.backend.redis.backend import RedisBackend

# How often the loop-lag timer fires, in seconds.
LAG_INTERVAL = 0.25
# Upper bounds of the loop-lag buckets, in seconds.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# The scopes chat messages are counted by (see ackchat.chat.dispatch).
CHAT_SCOPES = ("direct", "all", "room")


def label(reason: DisconnectReason | Refusal) -> str:
    """A reason as a label value: ``closed by peer`` -> ``closed_by_peer``."""
    return reason.name.lower()


class LoopLag:
    """A timer that measures how much later than asked for the event loop runs it."""

    def __init__(self, interval: float = LAG_INTERVAL) -> None:
        self.interval = interval
        self.histogram = LatencyHistogram(LAG_BUCKETS)
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start measuring on the running loop."""
        loop = asyncio.get_running_loop()
        self._schedule(loop, loop.time())

    def stop(self) -> None:
        """Stop the timer."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def tick(self, now: float) -> float:
        """Count the lag of a firing at ``now`` (loop time); returns it."""
        lag = max(now - self._due, 0.0)
        self.histogram.observe(lag)
        return lag

    def _schedule(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self.tick(now)
        self._schedule(loop, now)


def histogram_family(
    name: str, documentation: str, histograms: dict[str, LatencyHistogram], label_name: str
) -> HistogramMetricFamily:
    """A Prometheus histogram with one series per labelled :class:`LatencyHistogram`."""
    family = HistogramMetricFamily(name, documentation, labels=[label_name] if label_name else [])
    for value, histogram in histograms.items():
        family.add_metric(
            [value] if label_name else [], _buckets(histogram.cumulative()), histogram.total
        )
    return family


def _buckets(cumulative: Iterable[tuple[float, int]]) -> list[tuple[str, float]]:
    """Cumulative buckets as the exposition writes them: each bound's text, ``+Inf`` for
    the last."""
    return [
        ("+Inf" if bound == float("inf") else repr(bound), count) for bound, count in cumulative
    ]


@dataclass(frozen=True)
class RedisLinks:
    """The Redis metrics of a cluster node, read from its backend's public counts."""

    backend: RedisBackend

    @classmethod
    def of(cls, backend: Backend) -> RedisLinks | None:
        """The links of a cluster backend; None in embedded mode."""
        try:
            from ackchat.backend.redis.backend import RedisBackend
        except ImportError:
            # redis-py is not installed: no cluster mode.
            return None
        return cls(backend) if isinstance(backend, RedisBackend) else None

    def collect(self) -> Iterator[Metric]:
        """The Redis metrics, as they stand now."""
        links = self.backend.links
        connected = GaugeMetricFamily(
            "ackchat_redis_connected",
            "1 while this node's connection to Redis for operations is up (connected and"
            " recovered), else 0: operations are refused at once meanwhile.",
        )
        connected.add_metric([], int(links.connected))
        yield connected
        round_trips = CounterMetricFamily(
            "ackchat_redis_round_trips",
            "Round trips to Redis of this node's connection for operations: batches sent,"
            " each with every operation asked for meanwhile (the stream reader's reads"
            " are not counted).",
        )
        round_trips.add_metric([], links.round_trips)
        yield round_trips
        errors = CounterMetricFamily(
            "ackchat_redis_errors",
            "Faults on this node's connections to Redis, by connection (commands, reader)"
            " and kind: connection_lost, timeout (no reply in time; the connection is then"
            " made again), connect_failed (an attempt to reconnect), error_reply (Redis"
            " refused an operation), deaf (the reader heard nothing, and was restarted).",
            labels=["connection", "kind"],
        )
        for kind, count in links.command_faults.items():
            errors.add_metric(["commands", kind], count)
        for kind in (LOST, TIMEOUT):
            errors.add_metric(["reader", kind], links.reader_faults[kind])
        errors.add_metric(["reader", "deaf"], links.deaf_readers)
        yield errors
        reconnects = CounterMetricFamily(
            "ackchat_redis_reconnects",
            "Times a connection to Redis came up again after a fault, by connection (the"
            " reader's restarts, when deaf or reading a new run, too).",
            labels=["connection"],
        )
        reconnects.add_metric(["commands"], links.command_reconnects)
        reconnects.add_metric(["reader"], links.reader_reconnects)
        yield reconnects
        beats = CounterMetricFamily(
            "ackchat_redis_heartbeats", "Heartbeats of this node that Redis answered."
        )
        beats.add_metric([], links.heartbeats)
        yield beats
        missed = CounterMetricFamily(
            "ackchat_cross_node_events_missed",
            "Events of the cluster's stream this node never read: the stream was trimmed"
            " past them while its reader was behind or cut off.",
        )
        missed.add_metric([], links.missed_events)
        yield missed
        lag = HistogramMetricFamily(
            "ackchat_cross_node_delivery_lag_seconds",
            "Time from Redis writing an event to the cluster's stream (by Redis's clock,"
            " in milliseconds) until this node's stream reader delivered it (by this"
            " node's clock), one per event read, whichever node wrote it. It includes"
            " the offset between the two clocks (keep them in sync, with NTP); 0 if"
            " Redis's is ahead. Events without a time (written by an older node) are not"
            " counted.",
        )
        lag.add_metric([], _buckets(links.lag_buckets), links.lag_sum)
        yield lag


class ServerCollector:
    """The chat server's metrics, read from its counters at scrape time."""

    def __init__(self, server: ChatServer, lag: LoopLag) -> None:
        self._server = server
        self._lag = lag
        self._redis = RedisLinks.of(server.backend)

    def collect(self) -> Iterator[Metric]:
        """Every metric, as it stands now."""
        server = self._server
        counters = server.counters
        departed = sum(counters.departures.values())

        connected = GaugeMetricFamily(
            "ackchat_clients_connected", "Clients connected to this server now (with a name)."
        )
        connected.add_metric([], counters.admitted - departed)
        yield connected
        sockets = GaugeMetricFamily(
            "ackchat_connections_open", "TCP connections open now, named or not yet (or refused)."
        )
        sockets.add_metric([], server.open_connections)
        yield sockets
        limit = GaugeMetricFamily("ackchat_max_clients", "The limit of clients connected at once.")
        limit.add_metric([], server.backend.max_clients)
        yield limit

        admitted = CounterMetricFamily(
            "ackchat_connections", "Clients admitted (given a name) by this server."
        )
        admitted.add_metric([], counters.admitted)
        yield admitted
        rejected = CounterMetricFamily(
            "ackchat_connections_rejected",
            "Connections turned away before they got a name, by reason.",
            labels=["reason"],
        )
        rejected.add_metric(["server_full"], counters.full)
        for refusal in Refusal:
            rejected.add_metric([label(refusal)], counters.refused[refusal])
        yield rejected
        disconnections = CounterMetricFamily(
            "ackchat_disconnections", "Sessions that ended, by reason.", labels=["reason"]
        )
        for reason in DisconnectReason:
            disconnections.add_metric([label(reason)], counters.departures[reason])
        yield disconnections

        traffic = server.traffic()
        for name, documentation, value in (
            ("ackchat_lines_received", "Lines received from clients.", traffic.lines_in),
            ("ackchat_lines_sent", "Lines sent to clients.", traffic.lines_out),
            ("ackchat_bytes_received", "Bytes received from clients.", traffic.bytes_in),
            ("ackchat_bytes_sent", "Bytes sent to clients.", traffic.bytes_out),
        ):
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], value)
            yield family

        messages = CounterMetricFamily(
            "ackchat_chat_messages",
            "Chat messages this server's clients sent that were delivered, by scope.",
            labels=["scope"],
        )
        for scope in CHAT_SCOPES:
            messages.add_metric([scope], counters.chat_messages[scope])
        yield messages
        dropped = CounterMetricFamily(
            "ackchat_chat_messages_dropped",
            "Chat messages dropped: queued for a slow reader that was cut off, or for a"
            " connection that was closing.",
        )
        dropped.add_metric([], counters.chat_losses[ChatLoss.MESSAGES_DROPPED])
        yield dropped
        slow = CounterMetricFamily(
            "ackchat_chat_slow_readers_disconnected",
            "Clients cut off because they read their messages too slowly.",
        )
        slow.add_metric([], counters.chat_losses[ChatLoss.SLOW_READERS])
        yield slow

        yield histogram_family(
            "ackchat_command_duration_seconds",
            "Time to handle a command other than a plain line, until its reply is written"
            " (the first piece of a long one), by command.",
            counters.command_latency,
            "command",
        )
        yield histogram_family(
            "ackchat_event_loop_lag_seconds",
            f"How late a timer set every {LAG_INTERVAL:g} s runs: how long callbacks hold the"
            " event loop.",
            {"": self._lag.histogram},
            "",
        )
        if self._redis is not None:
            yield from self._redis.collect()


def server_registry(server: ChatServer, lag: LoopLag) -> CollectorRegistry:
    """A registry of the server's metrics and the process's (memory, CPU, open files, GC)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server, lag))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
