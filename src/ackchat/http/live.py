"""The dashboard's live feed: the server's counts sampled every second, and the updates
``GET /api/events`` pushes to every open dashboard as server-sent events.

Sampling: once a second :class:`Samples` notes this server's lines received, clients
connected and connections turned away (by the address policy, for a wrong password, or
because the server was full), and keeps ten minutes of them for the page's charts.

Pushing: a dashboard's stream gets an update at once, then whenever the service's
arrivals, departures and refusals change, on this server or on any node of its cluster
(looked at four times a second: this server's counters, and the backend's cheap
``version``, one round trip to Redis in a cluster), and every two seconds otherwise
(idle times grow, lines are counted, names and rooms change). Changes that go on
without a pause (connect/exit churn) are pushed every two seconds too after their first
second (:class:`PushSchedule`). Each update costs the page's browser a redraw: four a
second took it about 10% of a core, one a second 3-5%, and on the server's own machine
that is taken from the server. One backend snapshot per update serves every open
dashboard, and each gets it bounded by its own search (views.dashboard_view). A
dashboard that reads slowly gets the latest update when it reads again, never a queue of
old ones. Nothing is done while no dashboard is open but the sampling.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ackchat.backend.interface import BackendUnavailableError
from ackchat.chat.names import name_key
from ackchat.http.settle import settled
from ackchat.http.views import JSON, LocalClient, dashboard_view
from ackchat.protocol.replies import format_time
from ackchat.records import StatusSnapshot
from ackchat.server.assembly import ChatServer
from ackchat.server.reload import live_values

# Seconds between samples, and how many are kept (ten minutes).
SAMPLE_INTERVAL = 1.0
SAMPLES_KEPT = 600
# How often the feed looks for a change to push, and the longest time between updates.
CHECK_INTERVAL = 0.25
PUSH_INTERVAL = 2.0
# After this many seconds of changes at every look, they wait for the PUSH_INTERVAL too.
STEADY_AFTER = 1.0
# What an update holds at most: clients shown (by default, and the most one may ask for),
# latest departures, largest rooms, and member names per room.
CLIENTS_SHOWN = 100
CLIENTS_SHOWN_MAX = 500
DEPARTURES_SHOWN = 20
ROOMS_SHOWN = 50
MEMBERS_SHOWN = 20
# Settings shown beside the live ones: they need a restart to change.
FIXED_LIMITS = (
    "max_line_bytes",
    "max_output_bytes",
    "queue_warn",
    "queue_limit",
    "max_per_address",
    "connect_rate",
    "resume_grace",
)
UNAVAILABLE = "the server cannot reach its shared state; try again later"
# What the feed watches for a change (PushSchedule).
V = TypeVar("V")
# What the feed watches: this server's counts, and the backend's version (None while out
# of reach).
Version = tuple[tuple[int, ...], tuple[int, ...] | None]


class PushSchedule(Generic[V]):
    """When the feed pushes, given what it sees at each look: a change at once, and
    whatever it sees every PUSH_INTERVAL; but changes seen at every look for
    STEADY_AFTER seconds wait for the PUSH_INTERVAL while they go on, and are pushed at
    the first look that sees no new one. ``V`` is what changes (compared with ``!=``)."""

    def __init__(self, now: float) -> None:
        self._pushed: V | None = None
        self._seen: V | None = None
        self._last_push = now
        # When the looks began to see a new change every time (None: the last saw none).
        self._changing_since: float | None = None

    def due(self, now: float, latest: V) -> bool:
        """Whether to push now, ``latest`` being what the feed sees; if so, it counts as
        pushed."""
        if latest != self._seen:
            if self._changing_since is None:
                self._changing_since = now
        else:
            self._changing_since = None
        self._seen = latest
        steady = self._changing_since is not None and now - self._changing_since >= STEADY_AFTER
        if now - self._last_push >= PUSH_INTERVAL or (latest != self._pushed and not steady):
            self._pushed, self._last_push = latest, now
            return True
        return False


@dataclass(frozen=True, slots=True)
class Sample:
    """One second of the server's work: when, and what the charts draw."""

    time: float
    lines_per_second: float
    connected: int
    rejected_per_second: float


class Samples:
    """The latest samples, oldest first, made from running totals."""

    def __init__(self, kept: int = SAMPLES_KEPT) -> None:
        self._kept: deque[Sample] = deque(maxlen=kept)
        # The totals of the last sample: (time, lines received, connections turned away).
        self._last: tuple[float, int, int] | None = None

    def add(self, now: float, lines: int, connected: int, rejected: int) -> None:
        """Note the totals at ``now`` (wall time); the first call only sets the base."""
        last = self._last
        self._last = (now, lines, rejected)
        if last is None or now <= last[0]:
            return
        elapsed = now - last[0]
        self._kept.append(
            Sample(now, (lines - last[1]) / elapsed, connected, (rejected - last[2]) / elapsed)
        )

    def after(self, moment: float) -> list[Sample]:
        """The samples taken after ``moment``, oldest first."""
        return [sample for sample in self._kept if sample.time > moment]


@dataclass(frozen=True, slots=True)
class Picture:
    """What every open dashboard is shown at one moment, before each one's bounds."""

    time: float
    snapshot: StatusSnapshot | None
    who: list[tuple[str, list[str]]] = field(default_factory=list)
    rooms: list[tuple[str, int]] = field(default_factory=list)
    local: dict[str, LocalClient] = field(default_factory=dict)
    limits: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Watch:
    """What one dashboard asked for: its search, how many clients, whether addresses show."""

    query: str
    limit: int
    show_addresses: bool


def update_event(picture: Picture, watch: Watch, samples: list[Sample]) -> bytes:
    """One server-sent event: the picture as ``watch`` bounds it, and new ``samples``."""
    body: JSON = {
        "time": format_time(int(picture.time)),
        "limits": picture.limits,
        "samples": [
            [
                round(sample.time, 3),
                round(sample.lines_per_second, 2),
                sample.connected,
                round(sample.rejected_per_second, 2),
            ]
            for sample in samples
        ],
        "error": None,
    }
    if picture.snapshot is None:
        body["error"] = UNAVAILABLE
    else:
        body |= dashboard_view(
            picture.snapshot,
            picture.who,
            picture.rooms,
            picture.local,
            show_addresses=watch.show_addresses,
            query=watch.query,
            limit=watch.limit,
            departures=DEPARTURES_SHOWN,
            room_limit=ROOMS_SHOWN,
            members=MEMBERS_SHOWN,
        )
    return f"event: update\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


class Subscription:
    """One open dashboard's place in the feed: the latest picture, once it is new."""

    def __init__(self) -> None:
        self._latest: Picture | None = None
        self._ready = asyncio.Event()
        self._ended = False

    def offer(self, picture: Picture) -> None:
        """A new picture, replacing one not read yet."""
        self._latest = picture
        self._ready.set()

    def end(self) -> None:
        """The feed stops: :meth:`next` answers None."""
        self._ended = True
        self._ready.set()

    async def next(self) -> Picture | None:
        """The next picture, or None once the feed has stopped."""
        await self._ready.wait()
        self._ready.clear()
        return None if self._ended else self._latest


def local_clients(server: ChatServer) -> dict[str, LocalClient]:
    """What this server knows of its own named clients, by their name's key."""
    now = server.context.clock()
    local = {}
    for session in server.sessions():
        if session.name is not None:
            traffic = session.traffic
            local[name_key(session.name)] = LocalClient(
                now - session.last_input,
                traffic.lines_in,
                traffic.lines_out,
                traffic.bytes_in,
                traffic.bytes_out,
            )
    return local


class LiveFeed:
    """Samples the server's counts and pushes pictures of it to the open dashboards."""

    def __init__(self, server: ChatServer, wall: Callable[[], float] = time.time) -> None:
        self._server = server
        self._wall = wall
        self.samples = Samples()
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling (and pushing, while dashboards are open) on the running loop."""
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop, and end every open dashboard's stream."""
        for subscription in self._subscriptions:
            subscription.end()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """A place in the feed for one dashboard, for as long as it is open."""
        subscription = Subscription()
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    async def picture(self) -> Picture:
        """What the dashboards show now (without the snapshot if the backend is out of reach)."""
        server = self._server
        now = self._wall()
        limits = {
            **live_values(server.settings),
            **{name: getattr(server.settings, name) for name in FIXED_LIMITS},
        }
        try:
            snapshot = await settled(server.backend.snapshot(DEPARTURES_SHOWN))
            who = await settled(server.backend.who())
            rooms = await settled(server.backend.rooms())
        except BackendUnavailableError:
            return Picture(now, None, limits=limits)
        return Picture(now, snapshot, who, rooms, local_clients(server), limits)

    def _counts(self) -> tuple[int, int, int]:
        """This server's (clients connected, lines received, connections turned away)."""
        counters = self._server.counters
        connected = counters.admitted - sum(counters.departures.values())
        rejected = counters.full + sum(counters.refused.values())
        return connected, self._server.traffic().lines_in, rejected

    async def _version(self) -> Version:
        """Counts that change when a client comes, goes or is turned away, or the limit:
        this server's, and the backend's for the whole service (None while out of reach)."""
        counters = self._server.counters
        here = (
            counters.admitted,
            sum(counters.departures.values()),
            counters.full,
            sum(counters.refused.values()),
            self._server.backend.max_clients,
        )
        try:
            service = await settled(self._server.backend.version())
        except BackendUnavailableError:
            return here, None
        return here, service

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        connected, lines, rejected = self._counts()
        self.samples.add(self._wall(), lines, connected, rejected)
        next_sample = loop.time() + SAMPLE_INTERVAL
        schedule: PushSchedule[Version] = PushSchedule(loop.time())
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            now = loop.time()
            if now >= next_sample:
                connected, lines, rejected = self._counts()
                self.samples.add(self._wall(), lines, connected, rejected)
                next_sample = max(next_sample + SAMPLE_INTERVAL, now)
            if not self._subscriptions:
                continue
            if schedule.due(now, await self._version()):
                picture = await self.picture()
                for subscription in self._subscriptions:
                    subscription.offer(picture)
