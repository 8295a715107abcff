"""When a node's links to Redis count as alive: its heartbeat's timing, without I/O or clocks.

A node beats every third of its heartbeat TTL (the beat script sets its heartbeat key
to expire after the TTL, so two beats may be lost before the others count it dead). A
node reaps others only once it has itself been connected for a whole TTL: after Redis
comes back, every live node reconnects within that time (its reconnection delays are
capped at a third of the TTL), so none is reaped for the outage. Each beat also
publishes a notice on the cluster's stream; a reader that has not passed a beat's id a
TTL after it was sent is deaf (connected, but hearing nothing), and is reconnected.

:class:`LinkFaults` counts what went wrong on one of the node's connections to Redis, and
:class:`LinkCounts` is what ``/metrics`` reads of them all (with the reader's delivery
lag, fanout.py), as they stand when asked.

Times are monotonic seconds, passed in by the caller, so the logic is tested on a clock
the test moves.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ackchat.client.reconnect import backoff_delays

# Seconds before the first reconnection attempt, and the most between two (each delay
# is jittered between half and all of its step, so that nodes do not come back in step).
FIRST_RETRY = 0.05
LAST_RETRY = 2.0
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


@dataclass(frozen=True, slots=True)
class LinkCounts:
    """What a cluster node counts of its links to Redis, as they stood when asked."""

    # Whether the connection for operations is up (connected and recovered).
    connected: bool
    # Its round trips (batches sent), its faults by kind and its reconnections.
    round_trips: int
    command_faults: Mapping[str, int]
    command_reconnects: int
    # The stream reader's faults by kind and reconnections (restarts too), and the
    # times it was found deaf.
    reader_faults: Mapping[str, int]
    reader_reconnects: int
    deaf_readers: int
    # Heartbeats Redis answered.
    heartbeats: int
    # Events of the stream never read (it was trimmed past them).
    missed_events: int
    # The cross-node delivery lag (fanout.py): ``(bound, observations at most bound)``
    # for each bucket, the last bound infinite; and the sum of the observations.
    lag_buckets: tuple[tuple[float, int], ...]
    lag_sum: float


class Liveness:
    """One node's heartbeat schedule: when it may reap, and whether its reader is deaf."""

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
        is the probe unless an older one is still unheard."""
        self.beats += 1
        if self._probe is None:
            self._probe = (eid, now)

    def reader_restarted(self) -> None:
        """The reader starts afresh (reconnected, or reading a new run's stream): what it
        had not heard is no proof of deafness any more."""
        self._probe = None

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
