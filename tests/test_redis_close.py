"""A cluster node's backend closes at once, whatever Redis is sending it at that moment.

A node's shutdown (SIGTERM, the end of a drain) waits for its backend to close, which
cancels the tasks that read the cluster's stream and send its commands. A cancellation
that arrives while one of them finishes a read or a write must still end it: on Python
3.11, ``asyncio.wait_for`` (which redis-py uses to send a command when the connection
has a socket timeout) can swallow it, and a task that loops until it is cancelled then
never ends. Here a node is opened and closed again and again while another node of the
cluster keeps broadcasting, so that its reader always has events in flight.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from ackchat.backend.pending import Pending
from ackchat.backend.redis.backend import RedisBackend
from backends import fresh_cluster, redis_backend, redis_url
from lineclient import bounded
from redisserver import RedisServer

T = TypeVar("T")

# Nodes opened and closed while events stream in, and the seconds each may take to close.
ATTEMPTS = 40
CLOSE_BOUND = 3.0
# The backend's own tasks, by name: the ones a close must end.
BACKEND_TASKS = ("ackchat redis reader", "ackchat redis commands")


async def answer(result: Pending[T]) -> T:
    """The value of a backend's answer, once Redis gave it."""
    settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake(_: Pending[T]) -> None:
        if not settled.done():
            settled.set_result(None)

    result.add_done_callback(wake)
    await bounded(settled)
    return result.result()


class Nobody:
    """A chat peer that drops what it is sent."""

    def deliver(self, data: bytes) -> None:
        """Nothing reads it."""


async def closes_in_time(backend: RedisBackend) -> bool:
    """Close ``backend``; whether that ended within the bound."""
    done, _ = await asyncio.wait({asyncio.ensure_future(backend.close())}, timeout=CLOSE_BOUND)
    return bool(done)


async def end_stuck_tasks() -> None:
    """Cancel the backend tasks still running, again and again, until they end: a test
    that found one stuck must not leave the event loop unable to close."""
    for _ in range(100):
        stuck = [task for task in asyncio.all_tasks() if task.get_name() in BACKEND_TASKS]
        if not stuck:
            return
        for task in stuck:
            task.cancel()
        await asyncio.wait(stuck, timeout=0.1)


async def test_a_node_closes_at_once_while_the_clusters_events_stream_in(
    redis_server: RedisServer,
) -> None:
    url, cluster = redis_url(redis_server.port), fresh_cluster()
    sender = redis_backend(url, cluster=cluster, node="sender")
    await sender.start()
    admitted = await answer(sender.admit("127.0.0.1:40000", Nobody()))
    assert admitted is not None
    flooding = True

    async def flood() -> None:
        while flooding:
            sender.broadcast(admitted.record.name, "x")
            await asyncio.sleep(0)

    flooder = asyncio.ensure_future(flood())
    closed = []
    for attempt in range(ATTEMPTS):
        node = redis_backend(url, cluster=cluster, node=f"node-{attempt}")
        await node.start()
        # A few turns of the loop, a different number each time, so that the close meets
        # the reader at different points of its read.
        for _ in range(attempt % 5):
            await asyncio.sleep(0)
        closed.append(await closes_in_time(node))
        if not closed[-1]:
            break
    flooding = False
    await flooder
    closed.append(await closes_in_time(sender))
    await end_stuck_tasks()
    # One entry per close, the sender's last: False for one that did not end in time.
    assert closed == [True] * (ATTEMPTS + 1), closed
