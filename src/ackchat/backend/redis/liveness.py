"""When a node's links to Redis count as alive: its heartbeat's timing, without I/O or clocks.

A node beats every third of its heartbeat TTL (the beat script sets its heartbeat key
to expire after the TTL, so two beats may be lost before the others count it dead). A
node reaps others only once it has itself been connected for a whole TTL: after Redis
comes back, every live node reconnects within that time (its reconnection delays are
capped at a third of the TTL), so none is reaped for the outage. Each beat also
publishes a notice on the cluster's stream; a reader that has not passed a beat's id a
TTL after it was sent is deaf (connected, but hearing nothing), and is reconnected.

The beats are also the probe of the cross-node delivery lag: how long after a beat was
answered the node's own reader delivered its notice (:meth:`Liveness.heard`). It takes
both ends on the node's own clock (no clock of Redis's or of another host's), and every
event, whichever node wrote it, waits in the same queues on its way: the writer's
connection, Redis, the stream, the reader. :class:`LinkFaults` counts what went wrong
on one of the node's connections to Redis. Both are read by ``/metrics``.

Times are monotonic seconds, passed in by the caller, so the logic is tested on a clock
the test moves.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator

from ackchat.client.reconnect import backoff_delays
from ackchat.server.stats import LatencyHistogram

# Seconds before the first reconnection attempt, and the most between two (each delay
# is jittered between half and all of its step, so that nodes do not come back in step).
FIRST_RETRY = 0.05
LAST_RETRY = 2.0
# Upper bounds of the delivery-lag buckets, in seconds: from a reader waiting in XREAD
# (well under a millisecond on one host) to one catching up after an outage.
DELIVERY_LAG_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# The faults a connection to Redis counts, by kind (the label of /metrics' errors).
LOST = "connection_lost"
TIMEOUT = "timeout"
CONNECT_FAILED = "connect_failed"
ERROR_REPLY = "error_reply"
FAULT_KINDS = (LOST, TIMEOUT, CONNECT_FAILED, ERROR_REPLY)


def reconnect_delays(ttl: float) -> Iterator[float]:
    """Endless delays between attempts to reach Redis again: doubling from
    :data:`FIRST_RETRY` to :data:`LAST_RETRY`, and never more than a third of the TTL."""
    return backoff_delays(None, random.random, FIRST_RETRY, min(LAST_RETRY, ttl / 3))


# Beats kept waiting for the reader to deliver their notice; past it the oldest are not
# measured (a reader that hears none is deaf, and restarted long before).
UNHEARD_LIMIT = 64


class LinkFaults:
    """What went wrong on one of a node's connections to Redis, by kind, and how many
    times it came back."""

    __slots__ = ("counts", "reconnects")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(FAULT_KINDS, 0)
        self.reconnects = 0

    def failed(self, timed_out: bool) -> None:
        """The connection failed while in use: no reply in time, or lost (closed, reset)."""
        self.counts[TIMEOUT if timed_out else LOST] += 1

    def attempt_failed(self) -> None:
        """An attempt to connect again failed."""
        self.counts[CONNECT_FAILED] += 1

    def refused(self) -> None:
        """Redis answered an operation with an error."""
        self.counts[ERROR_REPLY] += 1

    def reconnected(self) -> None:
        """The connection is up again after a failure."""
        self.reconnects += 1


class Liveness:
    """One node's heartbeat schedule: when it may reap, and whether its reader is deaf;
    the delivery lag its beats measure."""

    def __init__(self, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError("the heartbeat TTL must be positive")
        self.ttl = ttl
        # Seconds between beats: a beat or two may be late before the key expires.
        self.interval = ttl / 3
        # When the connection for commands (which carries the beats) last came up.
        self._connected_since: float | None = None
        # The oldest beat the reader has not passed yet: its event id, when it was sent.
        self._probe: tuple[int, float] | None = None
        # Beats answered, and times the reader was found deaf.
        self.beats = 0
        self.deaf_readers = 0
        # How long after a beat was answered the reader delivered its notice.
        self.lag = LatencyHistogram(DELIVERY_LAG_BUCKETS)
        # Beats answered whose notice the reader has not delivered: (event id, when).
        self._unheard: deque[tuple[int, float]] = deque(maxlen=UNHEARD_LIMIT)
        # The last event id the reader said it delivered (0: none since it started).
        self._heard = 0

    def connected(self, now: float) -> None:
        """The node reached Redis (at start, or again after losing it)."""
        self._connected_since = now
        self._probe = None

    def disconnected(self) -> None:
        """The node lost Redis: it reaps nobody until it has been back for a TTL."""
        self._connected_since = None
        self._probe = None

    def may_reap(self, now: float) -> bool:
        """Whether the node has been connected for a whole TTL, long enough for every live
        node to have beaten since it came back."""
        since = self._connected_since
        return since is not None and now - since >= self.ttl

    def beat_sent(self, eid: int, now: float) -> None:
        """A beat with event id ``eid`` was published (``now``: when its answer came); it
        is the probe unless an older one is still unheard. Its lag is 0 if the reader
        delivered its notice before the answer came."""
        self.beats += 1
        if self._probe is None:
            self._probe = (eid, now)
        if eid <= self._heard:
            self.lag.observe(0.0)
        else:
            self._unheard.append((eid, now))

    def watch(self, applied: int) -> None:
        """Measure the lag from now on, the reader having delivered the events up to
        ``applied`` unwatched: the beats among them are not measured."""
        self._heard = applied
        while self._unheard and self._unheard[0][0] <= applied:
            self._unheard.popleft()

    def heard(self, applied: int, now: float) -> None:
        """The reader delivered the events up to ``applied`` at ``now``: the lag of each
        beat among them is measured. A lower id than before is a new run's stream (Redis
        lost its data), whose ids are not those of the beats waiting: they are dropped."""
        unheard = self._unheard
        if applied < self._heard:
            unheard.clear()
        self._heard = applied
        while unheard and unheard[0][0] <= applied:
            _, answered = unheard.popleft()
            self.lag.observe(max(now - answered, 0.0))

    def reader_restarted(self) -> None:
        """The reader starts afresh (reconnected, or reading a new run's stream): what it
        had not heard is no proof of deafness any more, nor measured."""
        self._probe = None
        self._unheard.clear()
        self._heard = 0

    def deaf(self, applied: int, now: float) -> bool:
        """Whether the reader, having delivered events up to ``applied``, has not heard a
        beat sent a TTL ago or more. A probe it heard is forgotten: the next beat is the
        next probe."""
        probe = self._probe
        if probe is None:
            return False
        eid, sent = probe
        if applied >= eid:
            self._probe = None
            return False
        if now - sent < self.ttl:
            return False
        self.deaf_readers += 1
        return True
