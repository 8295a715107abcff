"""Cross-node delivery: a node's reader of the cluster's event stream.

One task per node reads the capped stream with ``XREAD BLOCK`` from the id of the last
event it delivered and hands what it reads to the local index (local.py), which gives
each event to the clients here that it is for. Delivery is at least once with repeats
removed by id: when the reader's connection fails, it reconnects with backoff and jitter
and goes on from its last id; if the stream was trimmed past that id meanwhile, the
index says how many events were lost instead of missing them silently.
"""

from __future__ import annotations

import asyncio
import logging
import random

from redis.exceptions import RedisError

from ackchat.backend.redis.codec import decode_entry
from ackchat.backend.redis.commands import connect, log_crash, make_connection, unreachable
from ackchat.backend.redis.local import LocalIndex

log = logging.getLogger("ackchat.server")

# Events read at most at once, and how long one XREAD waits for new ones (milliseconds).
READ_COUNT = 1000
BLOCK_MS = 2000
# Seconds between reconnection attempts: doubling from the first to the last, each with
# up to half again of jitter so that nodes do not come back in step.
FIRST_RETRY = 0.05
LAST_RETRY = 2.0


class StreamReader:
    """Reads the stream ``stream`` of the Redis at ``url`` into ``index``."""

    def __init__(self, url: str, name: str, stream: str, index: LocalIndex) -> None:
        self._url = url
        # Replies wait up to the block time; past it (and a margin) Redis is unreachable.
        self._connection = make_connection(url, name, reply_timeout=BLOCK_MS / 1000 + 5.0)
        self._stream = stream
        self._index = index
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Connect (raises BackendUnavailableError if Redis cannot be reached) and start
        reading after the index's last event."""
        try:
            await connect(self._connection)
        except (RedisError, OSError) as error:
            raise unreachable(self._url, error) from None
        self._index.set_online(True)
        self._task = asyncio.create_task(self._run(), name="ackchat redis reader")
        self._task.add_done_callback(log_crash)

    async def close(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._index.set_online(False)
        await self._connection.disconnect()

    async def _run(self) -> None:
        connection, index = self._connection, self._index
        delay = FIRST_RETRY
        while True:
            try:
                if not connection.is_connected:
                    await connect(connection)
                    log.info(
                        "event stream reader reconnected to Redis; catching up after event %d",
                        index.applied,
                    )
                    index.set_online(True)
                await connection.send_command(
                    *("XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS),
                    *("STREAMS", self._stream, f"{index.applied}-0"),
                    check_health=False,
                )
                reply = await connection.read_response()
            except (RedisError, OSError) as error:
                if delay == FIRST_RETRY:
                    log.warning(
                        "event stream reader lost Redis (%s); reconnecting",
                        unreachable(self._url, error),
                    )
                index.set_online(False)
                await connection.disconnect()
                await asyncio.sleep(delay * (1 + random.random() / 2))
                delay = min(delay * 2, LAST_RETRY)
                continue
            delay = FIRST_RETRY
            if reply:
                ((_, entries),) = reply
                index.receive(decode_entry(entry_id, fields) for entry_id, fields in entries)
            elif waiting := index.settle_unreachable():
                # A blocking read that finds nothing saw every event added since it began.
                log.warning(
                    "%d answers waited for events after %d that the stream does not have;"
                    " answered without them (did Redis lose its data?)",
                    waiting,
                    index.applied,
                )
