"""``python bench/cluster.py``: embedded mode against cluster mode, the same load, one run.

Round after round, the modes alternate (embedded first in odd rounds, cluster first in
even ones): one embedded node, or three cluster nodes sharing this run's own
redis-server, each started afresh on free ports of 127.0.0.1, then the same scenarios
of ``ackchat bench`` against each (echo, connect/exit churn, fanout, idle) and direct
messages (:mod:`clusterload`); echo and churn run in the cluster round, in turns with
an embedded node started beside the cluster. Ratios cluster/embedded are taken within a
round, the report shows their median. While a run goes, a thread samples the CPU time
of every server process (/proc/PID/stat) and Redis's ``INFO stats memory``.

Exit codes: 0 when every measurement was made; 1 when one failed (the rest is still
reported) or the run could not go on; 2 for bad options; 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shlex
import shutil
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import TypeVar

import clusterstats
from ackchat.bench.client import BenchError
from ackchat.bench.runner import BenchFailedError, raise_open_files_limit, run_bench_options
from ackchat.bench.stats import Measurement, format_table, summarize
from ackchat.settings import BenchSettings
from clusterload import DirectResult, run_direct
from clusterstats import CLUSTER, EMBEDDED, Figures, Step, record
from comparison import ROOT, ComparisonError, charts
from comparison.cli import add_timing_options, sentence
from comparison.machine import describe
from comparison.outputs import Layout, new_folder
from comparison.processes import cpu_seconds, free_port, running
from comparison.rounds import wrong_replies
from comparison.servers import Server, ackchat_command

HOST = "127.0.0.1"
CLUSTER_NAME = "ackbench"
NODES = ("A", "B", "C")
# Seconds a cluster node may take to admit clients once it listens (a new cluster run
# turns clients away for one heartbeat TTL, 5 s by default).
READY_TIMEOUT = 20.0
SAMPLE_INTERVAL = 0.2
SOCKET_TIMEOUT = 10.0
FANOUT_WINDOW = 64
# Direct messages in flight at most: room for a rate times a latency well past the lag.
DIRECT_WINDOW = 1000
MODERATE_RATE = 1000.0
# Echo and churn take turns on the embedded node beside the cluster and on node A.
TURNS = (EMBEDDED, CLUSTER, CLUSTER, EMBEDDED)
INSTALL = "pip install -e '.[bench]'"
LAYOUT = Layout(ROOT)

T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    """How many rounds, how long and how big: the default, or ``--quick``."""

    rounds: int
    warmup: float
    duration: float
    receivers: int
    idle: int
    step: float
    rates: tuple[float, ...]
    # Connect/exit cycles counted for the round trips to Redis per connection.
    cycles: int
    # The run stops starting new measurements after this many seconds.
    budget: float


FULL = Scale(
    rounds=3,
    warmup=1.0,
    duration=3.0,
    receivers=1000,
    idle=2000,
    step=2.0,
    rates=(500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0),
    cycles=3000,
    budget=660.0,
)
QUICK = Scale(
    rounds=2,
    warmup=0.3,
    duration=1.0,
    receivers=1000,
    idle=1000,
    step=1.0,
    rates=(500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0),
    cycles=1000,
    budget=180.0,
)


# ---------------------------------------------------------------------------------------
# Talking to the servers directly: Redis's INFO, ackchat's greeting and status.


def redis_info(port: int, *sections: str) -> dict[str, str]:
    """``INFO <sections>`` of the redis-server on ``port``, parsed."""
    words = [b"INFO", *(section.encode() for section in sections)]
    request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
    try:
        with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as connection:
            connection.sendall(request)
            reader = connection.makefile("rb")
            head = reader.readline()
            if not head.startswith(b"$"):
                raise ComparisonError(f"redis-server answered INFO with {head[:80]!r}.")
            body = reader.read(int(head[1:]))
    except OSError as error:
        raise ComparisonError(f"redis-server on port {port} cannot be asked: {error}.") from None
    return clusterstats.parse_info(body.decode(errors="replace"))


def lines_to_end(readline: Callable[[], bytes]) -> list[bytes]:
    """Lines up to the block's end (``.``), without it; raises if the server closed."""
    lines: list[bytes] = []
    while True:
        line = readline()
        if not line:
            raise ComparisonError("the server closed the connection in the middle of a block.")
        line = line.rstrip(b"\r\n")
        if line == b".":
            return lines
        lines.append(line)


@contextmanager
def greeted(port: int) -> Iterator[tuple[socket.socket, Callable[[], bytes]] | None]:
    """A client past its greeting (None: the node turned it away for now); says exit."""
    with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as connection:
        reader = connection.makefile("rb")
        first = reader.readline()
        if not first.startswith(b"Welcome!"):
            yield None
            return
        lines_to_end(reader.readline)
        yield connection, reader.readline
        connection.sendall(b"exit\n")
        reader.readline()


def wait_until_admitting(port: int) -> None:
    """Return once the node on ``port`` greets a client (bounded by READY_TIMEOUT)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with greeted(port) as client:
                if client is not None:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise ComparisonError(f"the node on port {port} admitted no client within {READY_TIMEOUT:g} s.")


SEEN = re.compile(rb"(\d+) seen")


def clients_seen(port: int) -> int:
    """How many clients the server (or cluster) has named so far: ``status``'s header."""
    try:
        with greeted(port) as client:
            if client is None:
                raise ComparisonError(f"the node on port {port} turned a status client away.")
            connection, readline = client
            connection.sendall(b"status\n")
            block = lines_to_end(readline)
    except OSError as error:
        raise ComparisonError(f"the node on port {port} cannot be asked: {error}.") from None
    found = SEEN.search(block[0]) if block else None
    if found is None:
        raise ComparisonError(f"the status header of port {port} gives no count: {block[:1]!r}.")
    return int(found.group(1))


# ---------------------------------------------------------------------------------------
# Sampling the processes while a run goes.


class Sampler(threading.Thread):
    """Samples the CPU time of ``pids`` and Redis's commands and memory, every 0.2 s."""

    def __init__(self, pids: dict[str, int], redis_port: int | None) -> None:
        super().__init__(daemon=True)
        self._pids = pids
        self._redis_port = redis_port
        self._stop_event = threading.Event()
        self.cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        # (wall seconds, commands processed but this sampler's INFO, used_memory)
        self.redis: list[tuple[float, float, float]] = []

    def take(self) -> None:
        now = time.monotonic()
        for name, pid in self._pids.items():
            with suppress(ComparisonError):
                self.cpu[name].append((now, cpu_seconds(pid)))
        if self._redis_port is not None:
            try:
                info = redis_info(self._redis_port, "stats", "memory")
            except ComparisonError:
                return
            asked = len(self.redis) + 1
            commands = float(info.get("total_commands_processed", "0")) - asked
            self.redis.append((now, commands, float(info.get("used_memory", "0"))))

    def run(self) -> None:
        self.take()
        while not self._stop_event.wait(SAMPLE_INTERVAL):
            self.take()

    def finish(self) -> None:
        """Stop sampling, with a last sample."""
        self._stop_event.set()
        self.join()
        self.take()


@contextmanager
def sampling(pids: dict[str, int], redis_port: int | None) -> Iterator[Sampler]:
    """A running :class:`Sampler` for the block; stopped after it."""
    sampler = Sampler(pids, redis_port)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.finish()


# ---------------------------------------------------------------------------------------
# The measurements of one mode in one round.


@dataclass(frozen=True)
class Node:
    """A running ackchat node: its name (A, B, C), port, process id, /metrics port."""

    name: str
    port: int
    pid: int
    # Where it serves /metrics (0: it does not).
    http: int = 0


@dataclass
class Round:
    """Where one mode's measurements of one round go."""

    mode: str
    number: int
    scale: Scale
    figures: Figures
    raw: list[dict[str, object]]
    failures: list[str]
    redis_port: int | None = None
    redis_pid: int | None = None
    deadline: float = 0.0
    nodes: list[Node] = field(default_factory=list)
    # The embedded node started beside the cluster for echo's and churn's turns.
    beside: Node | None = None

    def say(self, text: str) -> None:
        print(f"  {self.mode}: {text}", file=sys.stderr, flush=True)

    def keep(self, key: str, value: float, mode: str | None = None) -> None:
        record(self.figures, mode or self.mode, key, self.number, value)

    def fail(self, what: str, problem: str) -> None:
        failure = f"{self.mode}: {what} in round {self.number}: {problem.rstrip('.')}."
        self.say(failure)
        self.failures.append(failure)

    def keep_raw(self, what: str, data: dict[str, object]) -> None:
        self.raw.append({"mode": self.mode, "round": self.number, "measurement": what, **data})

    @property
    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline


def bench(current: Round, what: str, options: BenchSettings) -> Measurement | None:
    """Run ``ackchat bench`` with ``options``; None (and a failure) if it failed."""
    if current.out_of_time:
        current.fail(what, "left out: the run's time budget was spent")
        return None
    current.say(what)
    try:
        measurement = run_bench_options(options)
    except BenchFailedError as error:
        current.fail(what, str(error))
        return None
    problem = wrong_replies(measurement)
    if problem is not None:
        current.fail(what, problem)
        return None
    current.keep_raw(what, summarize(measurement))
    return measurement


def timed(scale: Scale, port: int, **changes: object) -> BenchSettings:
    """The timed options of every scenario, against ``port``."""
    base = BenchSettings(host=HOST, port=port, warmup=scale.warmup, duration=scale.duration)
    return replace(base, **changes)  # type: ignore[arg-type]


def measure_echo(current: Round) -> None:
    """Echo on node A and on an embedded node up beside the cluster, in turns.

    Runs a minute apart differ by more than 5% on a shared machine, so echo is measured
    side by side in the cluster round (embedded, cluster, cluster, embedded: the mean of
    each mode's two runs), not in the rounds of each mode; the cluster's idle processes
    take no measurable CPU from the embedded node (docs/BENCHMARKS.md).
    """
    if current.beside is None:
        return
    scale = current.scale
    for node in (current.beside, current.nodes[0]):
        warm = timed(scale, node.port, scenario="echo", connections=50, pipeline=4, warmup=0)
        bench(current, f"warm-up on {node.name}", warm)
    for key, pipeline in (("echo 50/1", 1), ("echo 50/16", 16)):
        echo = partial(echo_once, current, key, pipeline)
        for mode, measurements in in_turns(current, echo).items():
            current.keep(key, sum(m.rate for m in measurements) / len(measurements), mode)
            if pipeline == 1:
                p99 = sum(float(m.latency.percentile(0.99)) for m in measurements)
                current.keep(f"{key} p99", p99 / len(measurements), mode)


def echo_once(
    current: Round, what: str, pipeline: int, mode: str, node: Node
) -> Measurement | None:
    """50 echo connections with ``pipeline`` requests in flight each, on ``node``."""
    options = timed(current.scale, node.port, scenario="echo", connections=50)
    return bench(current, f"{what} on {mode}", replace(options, pipeline=pipeline))


def in_turns(current: Round, run: Callable[[str, Node], T | None]) -> dict[str, list[T]]:
    """``run`` on the embedded node beside the cluster and on node A in ``TURNS``; each
    mode's results, for the modes whose every turn gave one (a failed turn is reported
    by ``run`` and leaves its mode out of this round)."""
    assert current.beside is not None
    nodes = {EMBEDDED: current.beside, CLUSTER: current.nodes[0]}
    results: dict[str, list[T]] = {EMBEDDED: [], CLUSTER: []}
    for mode in TURNS:
        result = run(mode, nodes[mode])
        if result is not None:
            results[mode].append(result)
    return {mode: done for mode, done in results.items() if len(done) == TURNS.count(mode)}


@dataclass(frozen=True)
class Churn:
    """One churn run on one node: cycles/s, CPU per connection, Redis's calls (cluster)."""

    rate: float
    cycles: int
    cpu: float
    calls: dict[str, int] | None


def churn_once(current: Round, mode: str, node: Node) -> Churn | None:
    """50 parallel connect/exit clients on ``node``, counted over every connection made
    (the status header's count); None (and a failure) if the run could not be made."""
    options = timed(current.scale, node.port, scenario="connect", connections=50)
    cluster = mode == CLUSTER
    try:
        seen_before = clients_seen(node.port)
        calls_before = redis_calls(current) if cluster else None
        cpu_before = cpu_seconds(node.pid)
    except ComparisonError as error:
        current.fail(f"churn on {mode}", str(error))
        return None
    measurement = bench(current, f"churn on {mode}", options)
    if measurement is None:
        return None
    try:
        cpu_after = cpu_seconds(node.pid)
        calls_after = redis_calls(current) if cluster else None
        # The status client that reads the count is one of those it counts.
        cycles = clients_seen(node.port) - seen_before - 1
    except ComparisonError as error:
        current.fail(f"churn on {mode}", str(error))
        return None
    calls = None
    if calls_before is not None and calls_after is not None:
        calls = clusterstats.calls_delta(calls_before, calls_after)
    return Churn(measurement.rate, cycles, cpu_after - cpu_before, calls)


def measure_churn(current: Round) -> None:
    """Churn on node A and on the embedded node beside the cluster, in turns (as echo);
    the node's CPU and, in cluster mode, Redis's calls per connection."""
    if current.beside is None:
        return
    for mode, churns in in_turns(current, partial(churn_once, current)).items():
        current.keep("churn", sum(run.rate for run in churns) / len(churns), mode)
        cycles = sum(run.cycles for run in churns)
        if cycles <= 0:
            continue
        current.keep("churn node cpu", sum(run.cpu for run in churns) * 1e6 / cycles, mode)
        counted = [run.calls for run in churns if run.calls is not None]
        if mode == CLUSTER and len(counted) == len(churns):
            delta = clusterstats.calls_added(counted)
            current.keep("churn commands", sum(delta.values()) / cycles)
            current.keep("churn scripts", delta.get("fcall", 0) / cycles)
            current.keep_raw("churn redis calls", {"connections": cycles, "calls": delta})


ROUND_TRIPS = re.compile(r"^ackchat_redis_round_trips(?:_total)? ([0-9.e+]+)$", re.MULTILINE)


def round_trips(http_port: int) -> float | None:
    """The node's count of round trips to Redis, from its /metrics (None: not there)."""
    url = f"http://{HOST}:{http_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=SOCKET_TIMEOUT) as response:
            text = response.read().decode(errors="replace")
    except OSError as error:
        raise ComparisonError(f"{url} cannot be read: {error}.") from None
    found = ROUND_TRIPS.search(text)
    return None if found is None else float(found.group(1))


def measure_round_trips(current: Round) -> None:
    """Connect/exit cycles on the node that serves /metrics: its round trips to Redis
    per connection, as the node counts them."""
    node = next((node for node in current.nodes if node.http), None)
    if node is None:
        return
    options = replace(
        timed(current.scale, node.port, scenario="connect", connections=50),
        warmup=0.0,
        requests=current.scale.cycles,
    )
    seen_before = clients_seen(node.port)
    # The status client's departure is recorded after its goodbye: let it pass.
    time.sleep(0.2)
    before = round_trips(node.http)
    if before is None:
        # An ackchat whose /metrics does not count them: commandstats still tell.
        current.say("round trips left out: /metrics has no ackchat_redis_round_trips")
        return
    if bench(current, "round trips", options) is None:
        return
    after = round_trips(node.http)
    cycles = clients_seen(node.port) - seen_before - 1
    if cycles > 0 and after is not None:
        current.keep("churn round trips", (after - before) / cycles)
        current.keep_raw("round trips", {"connections": cycles, "round_trips": after - before})


def redis_calls(current: Round) -> dict[str, int] | None:
    """Calls per command so far (None in embedded mode)."""
    if current.redis_port is None:
        return None
    return clusterstats.command_calls(redis_info(current.redis_port, "commandstats"))


def direct_once(
    current: Round, what: str, rate: float, duration: float, pipeline: int = DIRECT_WINDOW
) -> DirectResult | None:
    """One direct-message run from node A to node B (embedded: within the one node)."""
    if current.out_of_time:
        current.fail(what, "left out: the run's time budget was spent")
        return None
    sender, receiver = current.nodes[0], current.nodes[min(1, len(current.nodes) - 1)]
    current.say(f"{what} at {rate:g}/s" if rate else f"{what}, {pipeline} in flight")
    try:
        result = run_direct(
            HOST,
            sender.port,
            receiver.port,
            rate=rate,
            pipeline=pipeline,
            warmup=min(current.scale.warmup, 0.5),
            duration=duration,
        )
    except (BenchError, OSError) as error:
        current.fail(what, str(error))
        return None
    current.keep_raw(what, result.as_dict())
    # A step that loses messages is a step not held; elsewhere a loss is a failure.
    if (result.errors or result.lost) and what != "direct step":
        first = f" (the first: {result.error_samples[0]})" if result.error_samples else ""
        current.fail(what, f"{result.lost} messages lost, {result.errors} errors{first}")
        return None
    return result


def measure_direct(current: Round) -> None:
    """Latency with one message in flight and at a moderate rate; then rates stepped up
    until one is not held."""
    alone = direct_once(current, "direct alone", 0.0, current.scale.duration, pipeline=1)
    if alone is not None:
        current.keep("direct alone p50", alone.p50_ms)
        current.keep("direct alone p99", alone.p99_ms)
        current.keep("direct alone rate", alone.messages_per_s)
    moderate = direct_once(current, "direct", MODERATE_RATE, current.scale.duration)
    if moderate is not None:
        current.keep("direct p50", moderate.p50_ms)
        current.keep("direct p99", moderate.p99_ms)
    steps = []
    for rate in current.scale.rates:
        result = direct_once(current, "direct step", rate, current.scale.step)
        if result is None:
            return
        step = Step(
            rate, result.messages_per_s, result.p99_ms, result.lost, result.errors, result.finished
        )
        steps.append(step)
        if not step.held:
            break
    current.keep("direct sustained", clusterstats.sustained_rate(steps))


def measure_fanout(current: Round) -> None:
    """One sender on node A, receivers spread over every node; what each process used."""
    scale = current.scale
    nodes = current.nodes
    options = timed(
        scale,
        nodes[0].port,
        scenario="fanout",
        connections=scale.receivers,
        pipeline=FANOUT_WINDOW,
        workers=2,
        receiver_ports=tuple(node.port for node in nodes),
    )
    pids = {node.name: node.pid for node in nodes}
    if current.redis_pid is not None:
        pids["redis"] = current.redis_pid
    with sampling(pids, current.redis_port) as sampler:
        measurement = bench(current, f"fanout to {scale.receivers}", options)
    if measurement is None:
        return
    summary = summarize(measurement)
    current.keep("fanout", measurement.rate)
    current.keep("fanout p99", measurement.latency.percentile(0.99) / 1000)
    current.keep("fanout lost", float(str(summary.get("messages_lost", 0))))
    current.keep("fanout generator cpu", measurement.cpu_fraction * 100)
    span = scale.duration
    for node in nodes:
        current.keep(
            f"fanout cpu {node.name}", clusterstats.cpu_percent(sampler.cpu[node.name], span)
        )
    if current.redis_pid is not None and sampler.redis:
        current.keep("fanout redis cpu", clusterstats.cpu_percent(sampler.cpu["redis"], span))
        commands = [(wall, count) for wall, count, _ in sampler.redis]
        current.keep("fanout redis ops", clusterstats.busiest_rate(commands, span))
        current.keep("fanout redis memory", sampler.redis[-1][2] / 1e6)
        current.keep_raw(
            "fanout redis",
            {"peak_used_memory": max(memory for _, _, memory in sampler.redis)},
        )


def measure_idle(current: Round) -> None:
    """Hold idle clients on node A: its RSS and Redis's used_memory per client."""
    scale, node = current.scale, current.nodes[0]
    options = replace(
        timed(scale, node.port, scenario="idle", connections=scale.idle, duration=2.0),
        server_pid=node.pid,
    )
    before = None
    if current.redis_port is not None:
        before = float(redis_info(current.redis_port, "memory").get("used_memory", "0"))
    with sampling({}, current.redis_port) as sampler:
        measurement = bench(current, f"idle {scale.idle}", options)
    if measurement is None:
        return
    current.keep("idle node", measurement.extra.get("bytes_per_connection", 0.0) / 1024)
    if before is not None and sampler.redis:
        peak = max(memory for _, _, memory in sampler.redis)
        current.keep("idle redis", (peak - before) / scale.idle / 1024)


# Idle first: memory that earlier runs' connections left free in a node (or in Redis)
# would be reused by its clients, and hide what they cost.
MEASUREMENTS = (
    measure_idle,
    measure_echo,
    measure_churn,
    measure_round_trips,
    measure_direct,
    measure_fanout,
)


def measure_all(current: Round) -> None:
    """Every measurement of a round for the mode's running nodes."""
    for measure in MEASUREMENTS:
        try:
            measure(current)
        except ComparisonError as error:
            current.fail(measure.__name__.removeprefix("measure_"), str(error))


# ---------------------------------------------------------------------------------------
# Servers.


def redis_server() -> Server:
    """A throwaway redis-server: no persistence, room for many clients."""
    return Server(
        "redis-server",
        lambda port: [
            "redis-server",
            *("--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"),
            *("--maxclients", "15000"),
        ],
    )


def node_server(redis_port: int | None, http_port: int = 0) -> Server:
    """An ackchat node: embedded, or a node of this run's cluster (with ``http_port``,
    serving /metrics there too)."""
    if redis_port is None:
        return Server("ackchat embedded", ackchat_command, source=ROOT / "src")
    extra = ["--redis", f"redis://{HOST}:{redis_port}/0", "--cluster-name", CLUSTER_NAME]
    if http_port:
        token = secrets.token_urlsafe(24)
        extra += ["--http", f"{HOST}:{http_port}", f"--admin-token={token}"]
    return Server(
        "ackchat cluster node", lambda port: [*ackchat_command(port), *extra], source=ROOT / "src"
    )


def http_available() -> bool:
    """Whether ``ackchat serve --http`` can run here (the http extra is installed)."""
    return all(find_spec(module) is not None for module in ("aiohttp", "prometheus_client"))


def run_mode(current: Round) -> None:
    """Start the mode's servers afresh (one embedded node, or a redis-server and three
    cluster nodes), measure, stop them."""
    cluster = current.mode == CLUSTER
    with ExitStack() as stack:
        if cluster:
            current.redis_port, current.redis_pid = stack.enter_context(running(redis_server()))
        count = len(NODES) if cluster else 1
        for name in NODES[:count]:
            # The last node serves /metrics, for its count of round trips to Redis; it
            # only receives fanout messages otherwise.
            http = free_port() if cluster and name == NODES[-1] and http_available() else 0
            server = node_server(current.redis_port, http)
            port, pid = stack.enter_context(running(server))
            current.nodes.append(Node(name, port, pid, http))
        if cluster:
            port, pid = stack.enter_context(running(node_server(None)))
            current.beside = Node("embedded", port, pid)
            wait_until_admitting(port)
        for node in current.nodes:
            wait_until_admitting(node.port)
        measure_all(current)


# ---------------------------------------------------------------------------------------
# The report.


@dataclass(frozen=True)
class Run:
    """What the run measured, and how."""

    command: str
    scale: Scale
    machine: dict[str, str]
    figures: Figures
    raw: list[dict[str, object]]
    failures: list[str]
    seconds: float


NOTES = """\
Each cell: the median of the rounds (min-max in brackets); cluster/embedded is the ratio
within each round, then its median. Embedded: one node, every client on it. Cluster:
three nodes (A, B, C) and one redis-server, all started afresh each round; idle, echo
and churn on node A, direct messages from a client on A to one on B (embedded: both on
the one node), fanout with the sender on A and the receivers spread over A, B and C.
Echo and churn run side by side: in the cluster round an embedded node is up beside the
cluster, and the two take turns (embedded, cluster, cluster, embedded; each mode's two
runs averaged), since runs a minute apart differ by more than the 5% the target allows.
Churn per connection: INFO commandstats deltas (INFO left out) over the connections the
status header counts (the warm-up's included), the three nodes' heartbeats and stream
reads included. A node calls Redis with FCALL (one Lua function per operation, sent in
batches of a loop turn); "commands Redis ran" adds the commands inside the functions. The
node's own count of round trips (batches) is read from node C's /metrics
(ackchat_redis_round_trips; node C alone runs --http) around connect/exit cycles of its
own, so that echo and churn on node A run without the HTTP server.
CPU: the busiest window-long stretch of /proc/PID/stat samples taken every 0.2 s during
the run. A direct rate is held when nothing was lost or wrong, at least 95% of it
arrived in the window and the p99 stayed under 100 ms; rates are stepped up until one
is not held."""


def scale_note(scale: Scale) -> str:
    """The run's scale, which the labels leave out."""
    rates = ", ".join(f"{rate:g}" for rate in scale.rates)
    return (
        f"Scale: {scale.rounds} rounds, modes alternating; each timed run warmed up"
        f" {scale.warmup:g} s and measured {scale.duration:g} s; direct with one in"
        f" flight, at {MODERATE_RATE:g}/s ({DIRECT_WINDOW} in flight at most), then"
        f" steps of {scale.step:g} s at {rates} msg/s;"
        f" fanout to {scale.receivers:,} receivers, {FANOUT_WINDOW} in flight; idle held"
        f" {scale.idle:,} clients."
    )


def report_text(run: Run) -> str:
    """The plain-text report: the table, its notes, the failures."""
    machine = ", ".join(f"{key} {value}" for key, value in run.machine.items())
    blocks = [
        f"Command: {run.command} ({run.seconds:.0f} s)",
        f"Machine: {machine}",
        format_table(clusterstats.HEADERS, clusterstats.table_rows(run.figures)),
        scale_note(run.scale),
        NOTES,
    ]
    if run.failures:
        blocks.append("Failed, so left out:\n" + "\n".join(f"- {f}" for f in run.failures))
    return "\n\n".join(blocks)


def report_json(run: Run) -> str:
    """Everything measured, every round, as JSON."""
    ratios = {row.key: clusterstats.ratios(run.figures, row.key) for row in clusterstats.ROWS}
    return json.dumps(
        {
            "command": run.command,
            "machine": run.machine,
            "scale": asdict(run.scale),
            "seconds": round(run.seconds, 1),
            "failures": run.failures,
            "figures": run.figures,
            "ratios": {key: found for key, found in ratios.items() if found},
            "missed_targets": clusterstats.missed_targets(run.figures),
            "runs": run.raw,
        },
        indent=1,
    )


CHARTED = (
    ("echo 50/1", "echo 50 / 1, replies/s"),
    ("echo 50/16", "echo 50 / 16, replies/s"),
    ("churn", "churn 50, cycles/s"),
    ("direct p99", "direct at 1,000/s: p99, ms"),
    ("fanout", "fanout, deliveries/s"),
    ("idle node", "idle: node KB per client"),
)
COLOURS = {EMBEDDED: "tab:red", CLUSTER: "tab:purple"}


def draw_chart(run: Run, path: Path) -> None:
    """Bars of the main figures, embedded against cluster, min-max error bars."""
    from matplotlib.figure import Figure as Chart
    from matplotlib.ticker import FuncFormatter

    from ackchat.bench.stats import median
    from comparison.charts import tick_label

    drawing = Chart(figsize=(15, 8))
    axes = list(drawing.subplots(2, 3, squeeze=False).flat)
    for axis, (key, title) in zip(axes, CHARTED, strict=True):
        names, middles, lows, highs = [], [], [], []
        for mode in clusterstats.MODES:
            values = list(run.figures.get(mode, {}).get(key, {}).values())
            if values:
                middle = median(values)
                names.append(mode)
                middles.append(middle)
                lows.append(middle - min(values))
                highs.append(max(values) - middle)
        axis.bar(
            names,
            middles,
            yerr=[lows, highs],
            capsize=4,
            color=[COLOURS[name] for name in names],
        )
        axis.set_title(title, fontsize=10)
        axis.yaxis.set_major_formatter(FuncFormatter(tick_label))
    rounds = run.scale.rounds
    drawing.suptitle(f"ackchat embedded vs cluster (3 nodes + Redis), median of {rounds} rounds")
    drawing.tight_layout()
    drawing.savefig(path, dpi=100)


def save(run: Run, document: bool) -> Path:
    """Write cluster.txt, cluster.json (and cluster.png); returns the folder."""
    if document:
        folder = LAYOUT.results
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = new_folder(LAYOUT.runs, datetime.now(UTC))
    (folder / "cluster.txt").write_text(report_text(run) + "\n", encoding="utf-8")
    (folder / "cluster.json").write_text(report_json(run) + "\n", encoding="utf-8")
    if charts.available():
        draw_chart(run, folder / "cluster.png")
    return folder


# ---------------------------------------------------------------------------------------
# The command line.

DESCRIPTION = """\
Measure ackchat's cluster mode against its embedded mode with the same load in one run:
echo (50 connections, 1 and 16 in flight), connect/exit churn with Redis's commands per
connection, direct messages from one node to another (latency at 1,000/s, and the
highest rate held), fanout to 1,000 members over three nodes with each process's CPU
and Redis's commands and memory, and idle memory per client. The modes alternate round
by round; ratios cluster/embedded are taken within a round, and the medians reported.
It starts its own redis-server and ackchat nodes on free ports of 127.0.0.1. The table
goes to stdout; cluster.txt and cluster.json (and cluster.png with matplotlib) to a new
folder, bench/runs/<UTC time>/, or with --document to bench/results/."""


def parser() -> argparse.ArgumentParser:
    """The options of ``python bench/cluster.py``."""
    parser = argparse.ArgumentParser(
        prog="cluster.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_timing_options(parser, FULL, QUICK, "two rounds (about 1-2 minutes)", "run")
    parser.add_argument(
        "--document",
        action="store_true",
        help="write bench/results/cluster.{txt,json,png} instead of a new bench/runs/ folder",
    )
    return parser


def choose_scale(arguments: argparse.Namespace) -> Scale:
    """The default or quick scale, with the command line's changes."""
    scale = QUICK if arguments.quick else FULL
    changes: dict[str, object] = {
        key: getattr(arguments, key)
        for key in ("rounds", "duration", "warmup")
        if getattr(arguments, key) is not None
    }
    chosen = replace(scale, **changes)  # type: ignore[arg-type]
    # More or longer rounds get a budget of their size, still bounded.
    per_round = scale.budget / scale.rounds * max(1.0, chosen.duration / scale.duration)
    return replace(chosen, budget=per_round * chosen.rounds)


def say(sentence: str) -> None:
    """``sentence`` on stderr, as cluster.py."""
    print(f"cluster.py: {sentence}", file=sys.stderr, flush=True)


def measure(scale: Scale, command: str) -> Run:
    """Alternate the modes round by round; each cluster round has a redis-server of its own."""
    if shutil.which("redis-server") is None:
        raise ComparisonError("redis-server is not installed; cluster mode needs one.")
    raise_open_files_limit()
    started = time.monotonic()
    deadline = started + scale.budget
    figures: Figures = {}
    raw: list[dict[str, object]] = []
    failures: list[str] = []
    machine = describe()
    machine["load average at start"] = load_average()
    for number in range(1, scale.rounds + 1):
        order = (EMBEDDED, CLUSTER) if number % 2 else (CLUSTER, EMBEDDED)
        print(f"round {number} of {scale.rounds}", file=sys.stderr, flush=True)
        for mode in order:
            current = Round(mode, number, scale, figures, raw, failures, deadline=deadline)
            try:
                run_mode(current)
            except ComparisonError as error:
                current.fail("start", str(error))
    machine["load average at end"] = load_average()
    return Run(command, scale, machine, figures, raw, failures, time.monotonic() - started)


def load_average() -> str:
    """The machine's 1-minute load average (others' processes count too), or ``?``."""
    try:
        with open("/proc/loadavg", encoding="ascii") as loadavg:
            return loadavg.read().split()[0]
    except (OSError, IndexError):
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    """Run as ``python bench/cluster.py`` with ``argv``; the exit code."""
    arguments = parser().parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "bench/cluster.py", *given])
    try:
        if arguments.document and not charts.available():
            raise ComparisonError(f"--document needs matplotlib for the chart: {INSTALL}.")
        run = measure(choose_scale(arguments), command)
        folder = save(run, arguments.document)
    except KeyboardInterrupt:
        say("interrupted; the servers it started were stopped.")
        return 130
    except Exception as error:
        say(sentence(error))
        return 1
    print(report_text(run), end="\n\n")
    print(f"This run's report is in {folder}")
    if run.failures:
        count = len(run.failures)
        say(f"{count} measurement{'s' if count > 1 else ''} failed (listed in the report).")
        return 1
    return 0
