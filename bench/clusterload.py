"""Direct messages from one client to another, for ``bench/cluster.py``: latency and loss.

``ackchat bench`` has no direct-message scenario, so this is one, built from its parts:
a sender on one node keeps up to ``pipeline`` numbered ``/msg <receiver> <n> <ns>``
in flight, at most ``rate`` a second (:class:`ackchat.bench.fanout.Pacer`), and checks
each ``... ACK``; the receiver, on another node (or the same one), parses the event lines
``@<id> <time> direct <from>><to>: <n> <ns>``, checks the numbers come complete and in
order and times each from the embedded ``time.monotonic_ns()``
(:class:`ackchat.bench.fanout.Arrivals`, as the fanout scenario's receivers). Both run in
the calling process's event loop; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from ackchat.bench.chatlines import parse_event
from ackchat.bench.client import (
    CLOSED_BEFORE_GREETING,
    END,
    GREETING,
    MAX_REPLY_BYTES,
    BenchError,
    Tally,
    closed_early,
    first_line_error,
    greeted_in_time,
    open_connection,
)
from ackchat.bench.fanout import Arrivals, Pacer
from ackchat.bench.scenarios import Window
from ackchat.protocol.framing import LineFramer, LineTooLong
from ackchat.settings import BenchSettings

ACK = b" ACK"
WARNING = b"WARNING "
DIRECT = b"direct"
# Seconds to wait, after the window, for the final message to reach the receiver.
DRAIN_TIMEOUT = 20.0


class Peer(asyncio.Protocol):
    """A client past its greeting: ``ready`` holds its name; later lines go to ``live``."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._transport: asyncio.Transport | None = None
        self._framer = LineFramer(MAX_REPLY_BYTES)
        self._phase = "first line"
        self._name = b""
        self.ready: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        lines = self._framer.feed(data)
        if self._phase != "live":
            lines = self._greeted(lines)
        if lines:
            self.live(lines)

    def _greeted(self, lines: Sequence[bytes | LineTooLong]) -> Sequence[bytes | LineTooLong]:
        """Take the name from the greeting, skip the rest of it; the lines after it."""
        for position, line in enumerate(lines):
            if self._phase == "first line":
                error = first_line_error(line)
                if error is not None:
                    self._phase = "failed"
                    self.ready.set_exception(error)
                    return []
                assert type(line) is bytes
                self._name = line.removeprefix(GREETING).rstrip(b".")
                self._phase = "greeting"
            elif self._phase == "greeting" and line == END:
                self._phase = "live"
                self.ready.set_result(self._name)
                return lines[position + 1 :]
        return []

    def live(self, lines: Sequence[bytes | LineTooLong]) -> None:
        """Handle the lines that came after the greeting."""
        raise NotImplementedError

    def lost(self, error: BenchError) -> None:
        """The connection is gone: fail whatever waits on it."""

    def connection_lost(self, exc: Exception | None) -> None:
        failure = (
            BenchError(CLOSED_BEFORE_GREETING)
            if self._phase in ("first line", "greeting")
            else BenchError(closed_early(exc))
        )
        if not self.ready.done():
            self.ready.set_exception(failure)
        self.lost(failure)

    def write(self, line: bytes) -> None:
        """Send one line."""
        assert self._transport is not None
        self._transport.write(line + b"\n")

    def close(self) -> None:
        """Say ``exit`` (so the session is not held for /resume), then close the socket."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._phase == "live":
                self.write(b"exit")
            transport.close()


class DirectReceiver(Peer):
    """The recipient: checks the order of the direct messages and times each one."""

    def __init__(self, tally: Tally) -> None:
        super().__init__(tally)
        self.arrivals = Arrivals(tally)

    def live(self, lines: Sequence[bytes | LineTooLong]) -> None:
        now = time.monotonic_ns()
        texts = []
        for line in lines:
            event = parse_event(line) if type(line) is bytes else None
            if event is not None and event.scope == DIRECT:
                texts.append(event.text)
            elif type(line) is bytes and line.startswith(WARNING):
                self.arrivals.warnings += 1
            else:
                self._tally.error(f"unexpected line {line!r}")
        self.arrivals.take(texts, now)

    def lost(self, error: BenchError) -> None:
        if self._phase == "live":
            self.arrivals.lost(error)


class DirectSender(Peer):
    """The sender: ``/msg <to> <text>`` for each message of its pacer, each ACK checked."""

    def __init__(self, tally: Tally, pipeline: int, rate: float, size: int) -> None:
        super().__init__(tally)
        self.to = b""
        self._in_flight: deque[bytes] = deque()
        self.pacer = Pacer(tally, self._send, pipeline, rate, 0, size)

    def live(self, lines: Sequence[bytes | LineTooLong]) -> None:
        answered = 0
        for line in lines:
            if type(line) is bytes and (line.startswith(b"@") or line.startswith(WARNING)):
                continue
            if not self._in_flight:
                self._tally.error(f"unexpected line {line!r}")
                continue
            expected = self._in_flight.popleft()
            if line != expected:
                self._tally.error(f"expected {expected!r}, got {line!r}")
            answered += 1
        if answered:
            self.pacer.answered(answered)

    def lost(self, error: BenchError) -> None:
        if self._phase == "live":
            self.pacer.lost(error)

    def _send(self, text: bytes) -> None:
        line = b"/msg " + self.to + b" " + text
        self._in_flight.append(line + ACK)
        self.write(line)


@dataclass(frozen=True)
class DirectResult:
    """What one direct-message run measured."""

    rate: float
    sent: int
    delivered: int
    seconds: float
    messages_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    lost: int
    violations: int
    finished: bool
    errors: int
    error_samples: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """The result as plain data, for JSON."""
        return {
            "rate": self.rate,
            "sent": self.sent,
            "delivered": self.delivered,
            "seconds": round(self.seconds, 3),
            "messages_per_s": round(self.messages_per_s, 1),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "lost": self.lost,
            "violations": self.violations,
            "finished": self.finished,
            "errors": self.errors,
            "error_samples": list(self.error_samples),
        }


async def direct(
    host: str,
    sender_port: int,
    receiver_port: int,
    *,
    rate: float,
    pipeline: int,
    warmup: float,
    duration: float,
    size: int = 16,
) -> DirectResult:
    """One sender on ``sender_port`` messaging one receiver on ``receiver_port``."""
    tally = Tally()
    receiver = await open_connection(lambda: DirectReceiver(tally), host, receiver_port)
    sender: DirectSender | None = None
    try:
        name = await greeted_in_time(receiver.ready, host, receiver_port)
        sender = await open_connection(
            lambda: DirectSender(tally, pipeline, rate, size), host, sender_port
        )
        await greeted_in_time(sender.ready, host, sender_port)
        sender.to = name
        window = Window(BenchSettings(warmup=warmup, duration=duration), tally)
        tally.sending = True
        sender.pacer.start()
        await window.run()
        endings = [sender.pacer.stop(), receiver.arrivals.done]
        await asyncio.wait(endings, timeout=DRAIN_TIMEOUT)
    finally:
        receiver.close()
        if sender is not None:
            sender.close()
    assert sender is not None
    tally.flush()
    check = receiver.arrivals.check
    latency = tally.latency
    seconds = window.seconds
    return DirectResult(
        rate=rate,
        sent=sender.pacer.sent,
        delivered=tally.replies,
        seconds=seconds,
        messages_per_s=tally.replies / seconds if seconds else 0.0,
        p50_ms=latency.percentile(0.5) / 1000 if latency.count else 0.0,
        p99_ms=latency.percentile(0.99) / 1000 if latency.count else 0.0,
        max_ms=latency.max_us / 1000 if latency.count else 0.0,
        lost=check.lost + (0 if check.finished else max(0, sender.pacer.sent - check.expected)),
        violations=check.violations,
        finished=check.finished,
        errors=tally.errors,
        error_samples=tuple(tally.error_samples),
    )


def run_direct(
    host: str,
    sender_port: int,
    receiver_port: int,
    *,
    rate: float,
    pipeline: int,
    warmup: float,
    duration: float,
) -> DirectResult:
    """:func:`direct` in an event loop of its own (uvloop when installed), bounded in time."""
    from ackchat.bench.runner import event_loop_factory

    bound = warmup + duration + DRAIN_TIMEOUT + 30.0

    async def bounded() -> DirectResult:
        try:
            return await asyncio.wait_for(
                direct(
                    host,
                    sender_port,
                    receiver_port,
                    rate=rate,
                    pipeline=pipeline,
                    warmup=warmup,
                    duration=duration,
                ),
                bound,
            )
        except TimeoutError:
            late = f"the direct-message run did not end within {bound:g} seconds."
            raise BenchError(late) from None

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(bounded())
