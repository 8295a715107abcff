"""The fanout scenario against redis-server: SUBSCRIBE receivers and a PUBLISH sender.

The same measurement as ackchat's room fan-out (:mod:`ackchat.bench.fanout`), on Redis's
publish/subscribe: each receiver sends ``SUBSCRIBE <channel>`` and waits for the
confirmation; the sender keeps ``pipeline`` ``PUBLISH <channel> <n> <timestamp_ns>`` in
flight (at most ``rate`` a second) with the same :class:`~ackchat.bench.fanout.Pacer`, and
each receiver reads the ``message`` pushes (:class:`~ackchat.bench.resp.ChannelReader`)
into the same :class:`~ackchat.bench.fanout.Arrivals`. Redis answers each PUBLISH with the
number of clients it delivered the message to: anything but the run's receivers is a
failure, as a figure for some other number of receivers would mean nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ackchat.bench.client import (
    CLOSED_HINT,
    CONNECT_TIMEOUT,
    MAX_REPLY_BYTES,
    BenchError,
    ServerFullError,
    Tally,
    closed_early,
)
from ackchat.bench.fanout import Arrivals, FanoutConnection, Pacer
from ackchat.bench.resp import ChannelReader, command
from ackchat.client.errors import (
    EXIT_AUTH_FAILED,
    EXIT_CONNECT_FAILED,
    EXIT_SERVER_CLOSED,
)
from ackchat.protocol.framing import LineFramer, LineTooLong
from ackchat.protocol.replies import host_port

PONG = b"+PONG"
# How redis-server's error replies begin when it turns a client away.
FULL_ERROR = b"-ERR max number of clients reached"
AUTH_ERRORS = (b"-NOAUTH", b"-WRONGPASS")
NOT_REDIS = "--pubsub redis is for redis-server; leave it out for an ackchat server"
CLOSED_UNANSWERED = f"redis-server closed the connection before answering; {CLOSED_HINT}"


def refusal(reply: bytes | LineTooLong, request: str) -> BenchError:
    """Why redis-server (or another server) answered ``request`` with ``reply``, not as hoped.

    ``reply`` is what came instead: a RESP error line, or the first bytes of another
    protocol (an ackchat greeting, say).
    """
    if type(reply) is not bytes:
        return BenchError(f"the server answered {request} with an over-long line; {NOT_REDIS}.")
    text = reply.decode(errors="replace")
    if reply.startswith(FULL_ERROR):
        return ServerFullError()
    if reply.startswith(AUTH_ERRORS):
        return BenchError(
            f"redis-server asks for a password ({text[1:]}), which ackchat bench cannot give;"
            " measure a server started without requirepass.",
            EXIT_AUTH_FAILED,
        )
    if reply.startswith(b"-"):
        return BenchError(f"redis-server refused {request}: {text[1:]}")
    return BenchError(
        f"the server does not answer {request} as redis-server does (it sent {text!r});"
        f" {NOT_REDIS}."
    )


async def answered_in_time(ready: asyncio.Future[None], host: str, port: int) -> None:
    """Await the answer to the first command (PING, SUBSCRIBE) within ``CONNECT_TIMEOUT``."""
    try:
        await asyncio.wait_for(ready, CONNECT_TIMEOUT)
    except TimeoutError:
        raise BenchError(
            f"{host_port(host, port)} accepted the connection but did not answer within"
            f" {CONNECT_TIMEOUT:g} seconds; is it redis-server?",
            EXIT_CONNECT_FAILED,
        ) from None


class RedisSubscriber(FanoutConnection):
    """A subscriber: checks the order of the published messages and times each one."""

    def __init__(self, tally: Tally, channel: bytes) -> None:
        super().__init__()
        self._channel = channel
        self._reader = ChannelReader(channel)
        self.arrivals = Arrivals(tally)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._send(command(b"SUBSCRIBE", self._channel))

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        payloads = reader.feed(data)
        if not self.ready.done() and reader.subscriptions is not None:
            self.ready.set_result(None)
        if payloads:
            self.arrivals.take(payloads, time.monotonic_ns())
        if reader.problem is not None:
            if self.ready.done():
                unexpected = f"unexpected data from redis-server: {reader.problem!r}"
                self.arrivals.lost(BenchError(unexpected))
            else:
                request = f"SUBSCRIBE {self._channel.decode(errors='replace')}"
                self.ready.set_exception(refusal(reader.problem, request))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(BenchError(CLOSED_UNANSWERED, EXIT_SERVER_CLOSED))
        elif self.set_up:
            self.arrivals.lost(BenchError(closed_early(exc)))


class RedisPublisher(FanoutConnection):
    """The sender: ``PUBLISH`` each message of its :class:`Pacer` and check each reply.

    Past a ``PING`` (which tells redis-server from another server, and a full one), every
    reply should be ``:<subscribers>``: the number of clients the message reached.
    """

    def __init__(
        self,
        tally: Tally,
        channel: bytes,
        subscribers: int,
        pipeline: int,
        rate: float,
        limit: int,
        size: int,
    ) -> None:
        super().__init__()
        self._tally = tally
        self._channel = channel
        self._subscribers = subscribers
        self._expected = b":%d" % subscribers
        self._framer = LineFramer(MAX_REPLY_BYTES)
        self.pacer = Pacer(tally, self._publish, pipeline, rate, limit, size)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._send(command(b"PING"))

    def data_received(self, data: bytes) -> None:
        lines = self._framer.feed(data)
        if not self.ready.done() and lines:
            first, lines = lines[0], lines[1:]
            if first == PONG:
                self.ready.set_result(None)
            else:
                self.ready.set_exception(refusal(first, "PING"))
                self.close()
                return
        if lines:
            self._replies(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(BenchError(CLOSED_UNANSWERED, EXIT_SERVER_CLOSED))
        elif self.set_up:
            self.pacer.lost(BenchError(closed_early(exc)))

    def _replies(self, lines: Sequence[bytes | LineTooLong]) -> None:
        """Check the replies to PUBLISH: each should count every receiver of the run."""
        pacer = self.pacer
        expected = self._expected
        answered = 0
        for line in lines:
            if answered == pacer.in_flight:
                self._tally.error(f"unexpected reply {line!r}")
                continue
            answered += 1
            if line != expected:
                self._wrong(line)
        pacer.answered(answered)

    def _wrong(self, line: bytes | LineTooLong) -> None:
        """A reply that is not the run's number of receivers: the run cannot be measured."""
        self._tally.error(f"expected {self._expected!r}, got {line!r}")
        channel = self._channel.decode(errors="replace")
        count = line[1:] if type(line) is bytes and line[:1] == b":" else b""
        if count.isdigit():
            failure = BenchError(
                f"redis-server delivered a message to {int(count):,} subscribers of channel"
                f" {channel!r}, but this run has {self._subscribers:,} receivers: another"
                " client is subscribed to it (choose another --room), or receivers were lost."
            )
        else:
            failure = refusal(line, "PUBLISH")
        self.pacer.abort(failure)

    def _publish(self, text: bytes) -> None:
        self._send(command(b"PUBLISH", self._channel, text))
