"""Cross-node delivery: a node's reader of the cluster's event stream.

One task per node reads the capped stream with ``XREAD BLOCK`` from the id of the last
event it delivered and hands what it reads to the local index (local.py), which gives
each event to the clients here that it is for. Delivery is at least once with repeats
removed by id: when the reader's connection fails, it reconnects with backoff and jitter
and goes on from its last id; if the stream was trimmed past that id meanwhile, the
index says how many events were lost instead of missing them silently. On every new
connection it asks for the cluster's run first: a Redis that lost its data has a new
stream, which the index then reads from its start. :meth:`StreamReader.restart` drops
a connection that hears nothing (a deaf reader, see liveness.py) and reads on a new one.
A read that a Redis Cluster redirects (the slot is on another master, or on its way
there: slot.py) is made again where the slot is, at once for MOVED; a few redirections
in a row count as a lost connection.

The reader also measures the cross-node delivery lag: every entry carries the time Redis
wrote it, by Redis's clock in milliseconds (field ``t``, scripts.py), and once a batch
is delivered each of its entries is observed, this node's wall clock less that time
(:func:`observe_lag`). It includes the offset between this node's clock and the Redis
host's (keep them in sync, with NTP); an offset that makes it negative counts as 0.
Entries written by an older node, without ``t``, are not measured. Nothing is measured
per recipient: one field, one observation per event read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ackchat.backend.redis.codec import decode_entry, text_of
from ackchat.backend.redis.commands import (
    MasterLink,
    log_crash,
    stop_reading,
    unreachable,
)
from ackchat.backend.redis.liveness import LinkFaults
from ackchat.backend.redis.local import LocalIndex
from ackchat.backend.redis.slot import MAX_REDIRECTS, is_redirection, pause, shown
from ackchat.server.stats import LatencyHistogram

log = logging.getLogger("ackchat.server")

# Events read at most at once, and how long one XREAD waits for new ones (milliseconds).
READ_COUNT = 1000
BLOCK_MS = 2000
# Upper bounds of the delivery-lag buckets, in seconds: from a reader waiting in XREAD
# (the times are whole milliseconds: a lag under one shows as 0 or 0.001) to one
# catching up after an outage.
DELIVERY_LAG_BUCKETS = (
    0.001,
    0.002,
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
    30.0,
)
# The field of a stream entry with the time Redis wrote it; the scripts write it last.
WRITTEN = b"t"


class StreamReader:
    """Reads the stream ``stream`` of the Redis at ``url`` into ``index``; ``run`` is the
    key of the cluster's run, ``delays`` makes the waits between reconnection attempts."""

    def __init__(
        self,
        url: str,
        name: str,
        stream: str,
        run: str,
        index: LocalIndex,
        delays: Callable[[], Iterator[float]],
    ) -> None:
        self._url = url
        # Replies wait up to the block time; past it (and a margin) Redis is unreachable.
        self._link = MasterLink(url, name, BLOCK_MS / 1000 + 5.0)
        self._stream = stream
        self._run_key = run
        self._index = index
        self._delays = delays
        self._task: asyncio.Task[None] | None = None
        # Set while the task is being stopped: an error then ends it (see stop_reading).
        self._stopping = False
        # What went wrong on it, by kind, and its reconnections; how long the events it
        # delivered took from the stream (both for /metrics).
        self.faults = LinkFaults()
        self.lag = LatencyHistogram(DELIVERY_LAG_BUCKETS)

    async def connect(self) -> None:
        """Connect (raises BackendUnavailableError if Redis cannot be reached) and start
        reading after the index's last event."""
        try:
            await self._link.connect()
        except (RedisError, OSError) as error:
            raise unreachable(self._url, error) from None
        self._index.set_online(True)
        self._start()

    async def restart(self) -> None:
        """Drop the connection and go on reading, from the index's last event, on a new
        one: for a reader that hears nothing although its connection stands."""
        await self._stop()
        self._start()

    async def close(self) -> None:
        """Stop reading."""
        await self._stop()

    def _start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ackchat redis reader")
        self._task.add_done_callback(log_crash)

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            await stop_reading(task, self._link.connection)
            self._stopping = False
        self._index.set_online(False)
        await self._link.connection.disconnect()

    async def _run(self) -> None:
        link, index = self._link, self._index
        delays: Iterator[float] | None = None
        # Redirections in a row, with no read between.
        redirects = 0
        while True:
            try:
                if not link.connection.is_connected:
                    await self._reconnect()
                connection = link.connection
                await connection.send_command(
                    *("XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS),
                    *("STREAMS", self._stream, f"{index.applied}-0"),
                    check_health=False,
                )
                reply = await connection.read_response()
            except (RedisError, OSError) as error:
                if self._stopping:
                    return
                if is_redirection(error) and redirects < MAX_REDIRECTS:
                    # The read did not run: read again where the slot is (no events are
                    # missed meanwhile, the next read starts after the last one).
                    redirects += 1
                    await link.connection.disconnect()
                    found = link.follow(error)
                    if found is None:
                        await asyncio.sleep(pause(redirects))
                    else:
                        log.debug(
                            "event stream reader follows the cluster's slot %d to the Redis"
                            " Cluster master at %s",
                            found.slot,
                            shown(found.master),
                        )
                    continue
                if delays is None:
                    self.faults.failed(isinstance(error, RedisTimeoutError))
                    log.warning(
                        "event stream reader lost Redis (%s); reconnecting",
                        unreachable(self._url, error),
                    )
                    delays = self._delays()
                index.set_online(False)
                await link.connection.disconnect()
                await asyncio.sleep(next(delays))
                # After the pause, redirections are followed again.
                redirects = 0
                continue
            delays = None
            redirects = 0
            if reply:
                ((_, entries),) = reply
                index.receive(decode_entry(entry_id, fields) for entry_id, fields in entries)
                observe_lag(self.lag, entries, time.time_ns() // 1_000_000)
            elif waiting := index.settle_unreachable():
                # A blocking read that finds nothing saw every event added since it began.
                log.warning(
                    "%d answers waited for events after %d that the stream does not have;"
                    " answered without them (did Redis lose its data?)",
                    waiting,
                    index.applied,
                )

    async def _reconnect(self) -> None:
        """Connect again; a stream of another run (Redis lost its data) is read from its
        start."""
        index = self._index
        await self._link.connect()
        connection = self._link.connection
        await connection.send_command("GET", self._run_key, check_health=False)
        run = await connection.read_response()
        if index.observe_run(None if run is None else text_of(run)):
            log.warning(
                "the cluster's stream started over (Redis lost its data); reading it from its start"
            )
        log.info(
            "event stream reader reconnected to Redis; catching up after event %d",
            index.applied,
        )
        index.set_online(True)
        self.faults.reconnected()


def observe_lag(
    lag: LatencyHistogram, entries: Sequence[tuple[bytes, Sequence[bytes]]], now_ms: int
) -> None:
    """Observe into ``lag`` how long before ``now_ms`` (this node's wall clock, in
    milliseconds) Redis wrote each of ``entries`` (XREAD's ids and flat field lists), in
    seconds: 0 where Redis's clock is ahead. An entry without a time (an older node's)
    is skipped."""
    for _, fields in entries:
        if len(fields) > 1 and fields[-2] == WRITTEN and (written := fields[-1]).isdigit():
            lag.observe(max(now_ms - int(written), 0) / 1000)
