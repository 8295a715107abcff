"""The benchmark scenarios, each a coroutine that loads a server and returns a Measurement.

Every scenario stops by itself: its load runs for a warm-up then a measured window (or
until a number of requests), and every wait on the server is bounded. Scenarios run in
whatever event loop calls them, so the tests can aim them at an in-process server; the
runner calls them in worker processes under uvloop.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from ackchat.bench.client import (
    BenchError,
    EchoConnection,
    ScriptConnection,
    ServerFullError,
    Tally,
    greeted_in_time,
    open_connection,
)
from ackchat.bench.fanout import (
    FanoutConnection,
    FanoutReceiver,
    FanoutSender,
    Receiver,
    Sender,
)
from ackchat.bench.pubsub import RedisPublisher, RedisSubscriber, answered_in_time
from ackchat.bench.stats import LatencyHistogram, Measurement, ReplyRule
from ackchat.settings import BENCH_SCENARIOS, BenchSettings

SCENARIOS = BENCH_SCENARIOS
# How long the fanout scenario waits, after its window, for every receiver to hear the end.
DRAIN_TIMEOUT = 30.0
# Connections opened at once while setting up many of them.
OPEN_CONCURRENCY = 200
# Extra time any scenario may take for setting up and draining, beyond its load window.
SETUP_TIMEOUT = 60.0
# Connect/exit cycles run in parallel at most to fill the cache for the status scenario.
FILL_PARALLEL = 50
ACK = b" ACK"
NO_PID = "give the server's process id, or leave --server-pid out."

T = TypeVar("T")


def reply_rule(options: BenchSettings) -> ReplyRule:
    """An exact ``request + ' ACK'`` check, or a suffix check when ``expect`` is given."""
    if options.expect:
        return ReplyRule(options.expect.encode(), exact=False)
    return ReplyRule(ACK)


# Called by each worker once its connections are set up, to start all workers together.
Sync = Callable[[], None]


def _no_sync() -> None:
    return None


def requests_for(options: BenchSettings, connection: int) -> list[bytes]:
    """The requests one connection cycles through: distinct lines, so a mix-up shows."""
    if options.request:
        return [options.request.encode()]
    requests = []
    for number in range(16):
        head = f"c{connection}m{number}-"
        requests.append((head + "x" * max(0, options.size - len(head))).encode())
    return requests


def read_rss_kb(pid: int) -> int:
    """The resident memory of process ``pid`` in KiB, from /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        raise BenchError(
            f"cannot read the memory of process {pid} (--server-pid): {NO_PID}"
        ) from None
    raise BenchError(f"process {pid} (--server-pid) shows no memory: {NO_PID}")


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def usage_problem(options: BenchSettings) -> str | None:
    """Why ``options`` cannot make a run (one sentence), or None if they can."""
    if options.scenario not in SCENARIOS:
        return f"unknown scenario {options.scenario!r}; choose one of {', '.join(SCENARIOS)}."
    if options.scenario == "status" and options.line_protocol:
        return (
            "the status scenario uses 'status all', which only an ackchat server has;"
            " leave out --line-protocol."
        )
    if options.scenario == "fanout" and options.line_protocol and not options.redis_pubsub:
        return (
            "the fanout scenario uses rooms, which only an ackchat server has; leave out"
            " --line-protocol, or measure redis-server's SUBSCRIBE and PUBLISH with"
            " --pubsub redis."
        )
    return None


async def run_scenario(options: BenchSettings, sync: Sync = _no_sync) -> Measurement:
    """Run the scenario ``options`` names, bounded in time, in the running event loop."""
    problem = usage_problem(options)
    if problem is not None:
        raise ValueError(problem)
    run = {"echo": echo, "connect": connect, "idle": idle, "status": status, "fanout": fanout}[
        options.scenario
    ]
    bound = options.warmup + options.duration + SETUP_TIMEOUT + DRAIN_TIMEOUT
    try:
        return await asyncio.wait_for(run(options, sync), bound)
    except TimeoutError:
        raise BenchError(overdue(bound)) from None


def overdue(seconds: float) -> str:
    """The sentence for a run that did not end in time."""
    return f"the run did not end within {seconds:g} seconds: the server stopped answering."


class Window:
    """The warm-up and measured window of one process, and its CPU use during the window."""

    def __init__(self, options: BenchSettings, tally: Tally) -> None:
        self._options = options
        self._tally = tally
        self._cpu_start = 0.0
        self._started = 0.0
        self.seconds = 0.0
        self.cpu = 0.0

    async def run(self) -> None:
        """Warm up, open the window, wait for its end or the request limit, close it."""
        loop = asyncio.get_running_loop()
        tally = self._tally
        tally.sending = True
        await asyncio.sleep(self._options.warmup)
        tally.limit_reached = loop.create_future()
        self._cpu_start = cpu_seconds()
        self._started = time.monotonic()
        tally.measuring = True
        await asyncio.wait([tally.limit_reached], timeout=self._options.duration)
        self.close()

    def close(self) -> None:
        """End the window now: stop counting and sending."""
        tally = self._tally
        if not tally.measuring:
            return
        tally.measuring = False
        tally.sending = False
        self.seconds = time.monotonic() - self._started
        self.cpu = cpu_seconds() - self._cpu_start
        tally.flush()


def _measurement(
    options: BenchSettings, tally: Tally, window: Window, connections: int
) -> Measurement:
    return Measurement(
        scenario=options.scenario,
        connections=connections,
        replies=tally.replies,
        errors=tally.errors,
        seconds=window.seconds,
        cpu_seconds=window.cpu,
        max_process_cpu=window.cpu / window.seconds if window.seconds else 0.0,
        latency=tally.latency,
        error_samples=tally.error_samples,
    )


async def open_echo(options: BenchSettings, tally: Tally, count: int) -> list[EchoConnection]:
    """Open ``count`` echo connections and wait until each is past the greeting."""
    rule = reply_rule(options)
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def open_one(number: int) -> EchoConnection:
        async with gate:
            connection = await open_connection(
                lambda: EchoConnection(
                    tally,
                    requests_for(options, number),
                    rule,
                    options.pipeline,
                    options.greeting,
                ),
                options.host,
                options.port,
            )
            try:
                await greeted_in_time(connection.ready, options.host, options.port)
            except BaseException:
                connection.close()
                raise
            return connection

    return await _all_or_none([open_one(n) for n in range(count)], EchoConnection.close)


async def _all_or_none(
    openings: Sequence[Coroutine[Any, Any, T]], close: Callable[[T], None], held: int = 0
) -> list[T]:
    """Open connections together; if one fails, close those that opened and raise.

    A full server's error counts the connections open when it said so: ``held`` already
    open before these, and those of these that opened.
    """
    outcomes = await asyncio.gather(*openings, return_exceptions=True)
    opened = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            for connection in opened:
                close(connection)
            if isinstance(outcome, ServerFullError):
                raise ServerFullError(held + len(opened)) from None
            raise outcome
    return opened


async def _greeted(options: BenchSettings) -> ScriptConnection:
    """A connection past its greeting."""
    connection = await ScriptConnection.open(options.host, options.port)
    try:
        await greeted_in_time(connection.greeting(), options.host, options.port)
    except BaseException:
        connection.close()
        raise
    return connection


async def _held(options: BenchSettings) -> ScriptConnection:
    """A connection past its greeting, or (line protocol) past one checked request."""
    if options.greeting:
        return await _greeted(options)
    connection = await ScriptConnection.open(options.host, options.port)
    request = requests_for(options, 0)[0]
    try:
        connection.write_line(request)
        reply = await connection.read_line()
        if not reply_rule(options).matches(request, reply):
            raise BenchError(f"unexpected reply {reply!r} to {request!r}")
    except BaseException:
        connection.close()
        raise
    return connection


async def hold_all(options: BenchSettings, count: int) -> list[ScriptConnection]:
    """Open ``count`` connections at once and keep them: raises if the server cannot."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def hold() -> ScriptConnection:
        async with gate:
            return await _held(options)

    return await _all_or_none([hold() for _ in range(count)], ScriptConnection.close)


async def release_all(options: BenchSettings, connections: Sequence[ScriptConnection]) -> None:
    """Close held connections; an ackchat server is told ``exit`` so their slots are free."""

    async def release(connection: ScriptConnection) -> None:
        try:
            if options.greeting:
                connection.write_line(b"exit")
                await connection.read_line()
                await connection.closed
        finally:
            connection.close()

    await asyncio.gather(*(release(connection) for connection in connections))


async def _drain_and_close(connections: list[EchoConnection]) -> None:
    """Wait for the replies still in flight, then close every connection."""
    try:
        await asyncio.gather(*(connection.drained for connection in connections))
    finally:
        for connection in connections:
            connection.close()


async def echo(options: BenchSettings, sync: Sync) -> Measurement:
    """Keep ``pipeline`` requests in flight on each connection; check and time every reply."""
    tally = Tally(options.requests)
    rss_before = read_rss_kb(options.server_pid) if options.server_pid else 0
    connections = await open_echo(options, tally, options.connections)
    sync()
    window = Window(options, tally)
    for connection in connections:
        connection.start()
    await window.run()
    await _drain_and_close(connections)
    measurement = _measurement(options, tally, window, len(connections))
    if options.server_pid:
        rss_after = read_rss_kb(options.server_pid)
        measurement.extra.update(
            rss_before_kb=rss_before,
            rss_after_kb=rss_after,
            rss_growth_kb=rss_after - rss_before,
        )
    return measurement


async def connect_cycle(options: BenchSettings) -> None:
    """One connection's life: connect, greeting (or one request), goodbye, closed."""
    connection = await ScriptConnection.open(options.host, options.port)
    try:
        if options.greeting:
            await connection.greeting()
            connection.write_line(b"exit")
            goodbye = await connection.read_line()
            if not goodbye.startswith(b"Goodbye, "):
                raise BenchError(f"expected a goodbye, got {goodbye!r}")
        else:
            request = requests_for(options, 0)[0]
            connection.write_line(request)
            reply = await connection.read_line()
            if not reply_rule(options).matches(request, reply):
                raise BenchError(f"unexpected reply {reply!r} to {request!r}")
            if options.quit:
                connection.write_line(options.quit.encode())
                await connection.read_line()
            else:
                connection.close()
        await connection.closed
    finally:
        connection.close()


async def connect(options: BenchSettings, sync: Sync) -> Measurement:
    """``connections`` clients in parallel, each repeating connect cycles; cycles/s.

    First every client connects and stays until all workers have: a server that cannot
    hold them all says so now, instead of failing cycles at random during the window.
    """
    tally = Tally(options.requests)
    held = await hold_all(options, options.connections)
    try:
        sync()
    finally:
        await release_all(options, held)
    window = Window(options, tally)

    async def client() -> None:
        while tally.sending:
            started = time.monotonic_ns()
            try:
                await connect_cycle(options)
            except (BenchError, OSError) as error:
                tally.error(str(error))
                continue
            if tally.measuring:
                tally.replies += 1
                tally.samples.append((time.monotonic_ns() - started) // 1000)
                if tally.requests_limit and tally.replies >= tally.requests_limit:
                    tally.finish()

    tally.sending = True
    clients = [asyncio.create_task(client()) for _ in range(options.connections)]
    await window.run()
    await asyncio.gather(*clients)
    return _measurement(options, tally, window, options.connections)


async def idle(options: BenchSettings, sync: Sync) -> Measurement:
    """Hold ``connections`` idle clients; with a server pid, its memory growth per client."""
    rss_before = read_rss_kb(options.server_pid) if options.server_pid else 0
    cpu_start, started = cpu_seconds(), time.monotonic()
    held = await hold_all(options, options.connections)
    sync()
    try:
        await asyncio.sleep(options.duration)
        rss_after = read_rss_kb(options.server_pid) if options.server_pid else 0
    finally:
        for connection in held:
            connection.close()
    seconds = time.monotonic() - started
    cpu = cpu_seconds() - cpu_start
    measurement = Measurement(
        scenario="idle",
        connections=len(held),
        replies=len(held),
        seconds=seconds,
        cpu_seconds=cpu,
        max_process_cpu=cpu / seconds,
    )
    if options.server_pid:
        growth = rss_after - rss_before
        measurement.extra.update(
            rss_before_kb=rss_before,
            rss_after_kb=rss_after,
            bytes_per_connection=growth * 1024 / max(1, len(held)),
        )
    return measurement


async def fill_cache(options: BenchSettings, cycles: int, parallel: int = FILL_PARALLEL) -> None:
    """Put ``cycles`` departed clients in the server's cache with connect/exit cycles."""
    remaining = cycles

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await connect_cycle(options)

    await asyncio.gather(*(client() for _ in range(parallel)))


async def timed_status(connection: ScriptConnection) -> tuple[int, int]:
    """Ask for ``status all``; returns the microseconds to its end marker and its entries."""
    started = time.monotonic_ns()
    connection.write_line(b"status all")
    lines = await connection.read_block()
    elapsed = (time.monotonic_ns() - started) // 1000
    if not lines or not lines[0].startswith(b"status:"):
        raise BenchError(f"unexpected status reply {lines[:1]!r}")
    return elapsed, len(lines) - 1


async def status(options: BenchSettings, sync: Sync) -> Measurement:
    """Time ``status all`` over a full cache, then echo latency while clients loop on it.

    First all the clients it needs connect at once and leave: a server that cannot hold
    them says so before the cache is filled (those visits count towards the fill).
    """
    need = options.at_once
    await release_all(options, await hold_all(options, need))
    await fill_cache(options, max(0, options.cache_fill - need), min(FILL_PARALLEL, need))
    asker = await _greeted(options)
    alone = LatencyHistogram()
    entries = 0
    for _ in range(options.status_repeats):
        elapsed, entries = await timed_status(asker)
        alone.record(elapsed)
    asker.close()

    tally = Tally(options.requests)
    echoes = await open_echo(options, tally, options.connections)
    try:
        askers = await _all_or_none(
            [_greeted(options) for _ in range(options.status_clients)],
            ScriptConnection.close,
            held=len(echoes),
        )
    except BaseException:
        for connection in echoes:
            connection.close()
        raise
    sync()
    window = Window(options, tally)
    during = LatencyHistogram()

    async def loop_on_status(connection: ScriptConnection) -> None:
        while tally.sending:
            elapsed, _ = await timed_status(connection)
            if tally.measuring:
                during.record(elapsed)
        connection.close()

    tasks = [asyncio.create_task(loop_on_status(connection)) for connection in askers]
    for connection in echoes:
        connection.start()
    await window.run()
    await asyncio.gather(*tasks)
    await _drain_and_close(echoes)
    measurement = _measurement(options, tally, window, len(echoes))
    measurement.status_latency = during
    measurement.extra.update(
        status_entries=entries,
        status_alone_p50_ms=alone.percentile(0.5) / 1000,
        status_alone_max_ms=alone.max_us / 1000,
        status_replies=during.count,
    )
    return measurement


# A fanout connection of some kind; the sender's and the receivers' in open_fanout.
C = TypeVar("C", bound=FanoutConnection)
S = TypeVar("S", bound=FanoutConnection)
R = TypeVar("R", bound=FanoutConnection)


async def open_ready(
    options: BenchSettings,
    make: Callable[[], C],
    count: int,
    held: int = 0,
    ports: Sequence[int] = (),
) -> list[C]:
    """Open ``count`` fanout connections, to ``ports`` in turn (default: the run's port);
    wait (bounded) until each is set up."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    host = options.host
    ports = ports or (options.port,)
    answered = answered_in_time if options.redis_pubsub else greeted_in_time

    async def open_one(port: int) -> C:
        async with gate:
            connection = await open_connection(make, host, port)
            try:
                await answered(connection.ready, host, port)
            except BaseException:
                connection.close()
                raise
            return connection

    openings = [open_one(ports[number % len(ports)]) for number in range(count)]
    return await _all_or_none(openings, FanoutConnection.close, held)


async def open_fanout(
    options: BenchSettings, sender: Callable[[], S], receiver: Callable[[], R]
) -> tuple[list[S], list[R]]:
    """The sender first (if this process sends), then the receivers, each set up."""
    senders = await open_ready(options, sender, 1) if options.sends else []
    try:
        receivers = await open_ready(
            options, receiver, options.connections, len(senders), options.receiver_ports
        )
    except BaseException:
        for connection in senders:
            connection.close()
        raise
    return senders, receivers


async def room_fanout(
    options: BenchSettings, tally: Tally
) -> tuple[Sequence[Sender], Sequence[Receiver]]:
    """A ``/say`` sender and receivers that joined ``options.room`` (ackchat)."""
    room = options.room.encode()

    def sender() -> FanoutSender:
        pipeline, rate, limit = options.pipeline, options.rate, options.requests
        return FanoutSender(tally, room, pipeline, rate, limit, options.size)

    return await open_fanout(options, sender, lambda: FanoutReceiver(tally, room))


async def redis_fanout(
    options: BenchSettings, tally: Tally
) -> tuple[Sequence[Sender], Sequence[Receiver]]:
    """A ``PUBLISH`` sender and receivers subscribed to the channel ``options.room``.

    The sender expects each message to reach every receiver of the run, in all workers.
    """
    channel = options.room.encode()

    def sender() -> RedisPublisher:
        pipeline, rate, limit = options.pipeline, options.rate, options.requests
        subscribers = options.all_connections
        return RedisPublisher(tally, channel, subscribers, pipeline, rate, limit, options.size)

    return await open_fanout(options, sender, lambda: RedisSubscriber(tally, channel))


async def fanout(options: BenchSettings, sync: Sync) -> Measurement:
    """One sender and ``connections`` receivers of a room (or a redis channel).

    Deliveries/s, latency and losses. The first worker also runs the sender; every
    worker's window closes at its end or when one of its receivers hears the sender's
    final message. Afterwards each receiver waits (bounded) for that final message, so
    that every message can be accounted for.
    """
    tally = Tally()
    opening = redis_fanout if options.redis_pubsub else room_fanout
    senders, receivers = await opening(options, tally)
    pacers = [sender.pacer for sender in senders]
    arrivals = [receiver.arrivals for receiver in receivers]
    sync()
    window = Window(options, tally)
    tally.sending = True
    for pacer in pacers:
        pacer.start()
    try:
        await window.run()
        endings = [pacer.stop() for pacer in pacers]
        endings += [arrival.done for arrival in arrivals]
        await asyncio.wait(endings, timeout=DRAIN_TIMEOUT)
    finally:
        connections: list[Sender | Receiver] = [*senders, *receivers]
        for connection in connections:
            connection.close()
    for pacer in pacers:
        if pacer.failure is not None:
            raise pacer.failure
    tally.flush()
    measurement = _measurement(options, tally, window, len(receivers))
    checks = [arrival.check for arrival in arrivals]
    measurement.extra.update(
        messages_sent=sum(pacer.sent for pacer in pacers),
        messages_in_window=sum(pacer.acked_in_window for pacer in pacers),
        deliveries_in_order=sum(check.in_order for check in checks),
        order_violations=sum(check.violations for check in checks),
        receivers_unfinished=sum(not check.finished for check in checks),
        slow_reader_warnings=sum(arrival.warnings for arrival in arrivals),
    )
    return measurement
