"""Compare ackchat with redis-server, two bare echo servers and an earlier ackchat.

``python bench/compare.py`` starts each server in turn, interleaved over several rounds,
runs the same scenarios against each with ``ackchat.bench``, and writes the median of the
rounds (with min-max) to bench/results/ (table, JSON, PNG) and into docs/BENCHMARKS.md.
Ratios are taken within a round, so they compare servers measured minutes apart at most.
The earlier ackchat (``--against REV``, by default the last commit before chat) is
checked out with ``git worktree`` into a temporary directory and runs the echo scenarios
only, so that the cost of chat on the echo path shows as ``ackchat/earlier``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ackchat.bench.runner import BenchFailedError, raise_open_files_limit, run_bench_options
from ackchat.bench.scenarios import BenchOptions
from ackchat.bench.stats import (
    Measurement,
    format_markdown_table,
    format_table,
    median,
    summarize,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BASELINES = ROOT / "bench" / "baselines"
DOCUMENT = ROOT / "docs" / "BENCHMARKS.md"
BEGIN_MARK = "<!-- compare:begin -->"
END_MARK = "<!-- compare:end -->"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
MAX_CLIENTS = 20000
# The last commit before chat ("Long replies yield to other connections..."); its
# successor is "Chat core (pure)...".
BEFORE_CHAT = "0aec447"
EARLIER = "ackchat earlier"
ECHO_KEYS = ("warm-up", "echo 3/1", "echo 50/1", "echo 50/16")
FANOUT_RECEIVERS = 1000


@dataclass(frozen=True)
class Server:
    """A server to compare: how to start it and how the load generator talks to it."""

    name: str
    command: Callable[[int], list[str]]
    load: BenchOptions = field(default_factory=BenchOptions)
    # PYTHONPATH for the server process: which ackchat source tree runs.
    source: Path | None = None
    # The scenarios it runs (all that apply when empty).
    only: tuple[str, ...] = ()

    def runs(self, scenario: Scenario) -> bool:
        """Whether ``scenario`` runs against this server."""
        return scenario.applies_to(self.name) and (not self.only or scenario.key in self.only)


def ackchat_command(port: int) -> list[str]:
    """ackchat with its default settings, except room for the idle scenario's clients."""
    serve = ["serve", "--port", str(port), "--max-clients", str(MAX_CLIENTS)]
    return [sys.executable, "-m", "ackchat", *serve]


def earlier_command(port: int) -> list[str]:
    """The earlier ackchat with today's rate-limit defaults (it knows both options).

    Before ``9047241`` the default was 50,000 lines/s and cut off one pipelining client
    early; the same limit on both compares the code, not the defaults.
    """
    rate = ["--rate-limit", "200000", "--rate-burst", "400000"]
    return [*ackchat_command(port), *rate]


def baseline_command(script: str) -> Callable[[int], list[str]]:
    """A bare echo server from bench/baselines/."""
    return lambda port: [sys.executable, str(BASELINES / script), "--port", str(port)]


def redis_command(port: int) -> list[str]:
    """redis-server without persistence, allowed enough clients for the idle scenario."""
    return [
        "redis-server",
        *("--port", str(port), "--save", "", "--appendonly", "no"),
        *("--maxclients", "15000"),
    ]


LINE = BenchOptions(line_protocol=True)
SERVERS = (
    Server("ackchat", ackchat_command, source=ROOT / "src"),
    Server("uvloop echo", baseline_command("echo_uvloop.py"), LINE),
    Server("streams echo", baseline_command("echo_streams.py"), LINE),
    Server(
        "redis-server",
        redis_command,
        replace(LINE, request="PING", expect="+PONG", quit="QUIT"),
    ),
)


@dataclass(frozen=True)
class Scale:
    """How long and how big the runs are: the full default or ``--quick``."""

    warmup: float
    duration: float
    idle: int
    cache: int
    messages: int
    cold: float
    receivers: int


FULL = Scale(
    warmup=1.0,
    duration=5.0,
    idle=10000,
    cache=10000,
    messages=1_000_000,
    cold=5.0,
    receivers=FANOUT_RECEIVERS,
)
QUICK = Scale(
    warmup=0.3, duration=1.0, idle=1000, cache=1000, messages=100_000, cold=1.0, receivers=200
)


@dataclass(frozen=True)
class Scenario:
    """One run of the load generator against one server."""

    key: str
    options: BenchOptions
    servers: tuple[str, ...] = ()

    def applies_to(self, server: str) -> bool:
        """Whether this scenario runs against ``server`` (all servers when none are named)."""
        return not self.servers or server in self.servers


def scenarios(scale: Scale) -> list[Scenario]:
    """The scenarios of one round, in the order they run after the server starts."""
    timed = BenchOptions(warmup=scale.warmup, duration=scale.duration)
    echo = replace(timed, scenario="echo")
    return [
        Scenario("cold", replace(echo, connections=50, warmup=0.0, duration=scale.cold)),
        Scenario("warm-up", replace(echo, connections=50, pipeline=4, warmup=0.0)),
        Scenario("echo 3/1", replace(echo, connections=3)),
        Scenario("echo 50/1", replace(echo, connections=50)),
        Scenario("echo 50/16", replace(echo, connections=50, pipeline=16)),
        Scenario("idle", replace(timed, scenario="idle", connections=scale.idle, duration=2.0)),
        Scenario("churn 50", replace(timed, scenario="connect", connections=50)),
        Scenario(
            "status",
            replace(timed, scenario="status", connections=10, cache_fill=scale.cache),
            ("ackchat",),
        ),
        # One message in flight: the sender waits for each ACK, which the server sends
        # once the message is written (or queued) to every receiver.
        Scenario(
            "fanout",
            replace(timed, scenario="fanout", connections=scale.receivers, workers=2),
            ("ackchat",),
        ),
        # Two in flight keeps one client under ackchat's default rate limit (50,000 lines/s).
        Scenario(
            "messages",
            replace(
                echo,
                connections=1,
                pipeline=2,
                warmup=0.0,
                duration=120.0,
                requests=scale.messages,
            ),
            ("ackchat",),
        ),
    ]


@dataclass(frozen=True)
class Figure:
    """One row of the results table: a number taken from a scenario's summary."""

    label: str
    scenario: str
    key: str
    unit: str
    scale: float = 1.0


FIGURES = (
    Figure("echo 3 conns / 1 in flight", "echo 3/1", "rate", "replies/s"),
    Figure("echo 50 / 1", "echo 50/1", "rate", "replies/s"),
    Figure("echo 50 / 16", "echo 50/16", "rate", "replies/s"),
    Figure("p50 at 50 / 1", "echo 50/1", "latency_p50_us", "µs"),
    Figure("p99 at 50 / 1", "echo 50/1", "latency_p99_us", "µs"),
    Figure("idle: memory per connection", "idle", "bytes_per_connection", "KB", 1 / 1024),
    Figure("churn 50 parallel", "churn 50", "rate", "cycles/s"),
    Figure("status all, 10k entries: reply time", "status", "status_alone_p50_ms", "ms"),
    Figure("status all, 10k entries: slowest reply", "status", "status_alone_max_ms", "ms"),
    Figure("status loop: reply time p50", "status", "status_p50_us", "ms", 1 / 1000),
    Figure("status loop: others' echo p99", "status", "latency_p99_us", "ms", 1 / 1000),
    Figure("cold start: first seconds / steady", "cold", "cold_ratio", "x"),
    Figure("messages through 1 conn: RSS growth", "messages", "rss_growth_kb", "KB"),
    Figure("fanout to 1,000 (quick: 200): deliveries", "fanout", "rate", "per s"),
    Figure("fanout: messages", "fanout", "messages_per_s", "per s"),
    Figure("fanout: send-to-receipt p50", "fanout", "latency_p50_us", "ms", 1 / 1000),
    Figure("fanout: send-to-receipt p99", "fanout", "latency_p99_us", "ms", 1 / 1000),
    Figure("fanout: send-to-receipt max", "fanout", "latency_max_us", "ms", 1 / 1000),
    Figure("fanout: messages lost", "fanout", "messages_lost", "deliveries"),
    Figure("fanout: order violations", "fanout", "order_violations", "count"),
    Figure("fanout: generator CPU", "fanout", "cpu_percent", "% of a core"),
)


@dataclass(frozen=True)
class Target:
    """A goal from issue #3, checked on the medians of ackchat's figures and ratios."""

    label: str
    figure: str
    kind: str
    bound: float
    against: str = ""

    def met(self, value: float) -> bool:
        """Whether ``value`` (a ratio or an absolute figure) meets the bound."""
        return value >= self.bound if self.kind == "min" else value <= self.bound


TARGETS = (
    Target("(1) echo 50/1 ≥ 0.65x redis", "echo 50 / 1", "min", 0.65, "redis-server"),
    Target("(1) echo 50/1 ≥ 0.85x uvloop echo", "echo 50 / 1", "min", 0.85, "uvloop echo"),
    Target("(2) echo 50/16 ≥ 0.8x redis", "echo 50 / 16", "min", 0.8, "redis-server"),
    Target("(3) p99 at 50/1 ≤ 1.5x redis", "p99 at 50 / 1", "max", 1.5, "redis-server"),
    Target("(4) echo 3/1 ≥ 1.0x redis", "echo 3 conns / 1 in flight", "min", 1.0, "redis-server"),
    Target("(5) idle ≤ 4 KB per connection", "idle: memory per connection", "max", 4.0),
    Target("(6) churn ≥ 0.5x redis", "churn 50 parallel", "min", 0.5, "redis-server"),
    Target("(7) status all reply < 50 ms", "status all, 10k entries: slowest reply", "max", 50.0),
    Target("(7) others' echo p99 < 10 ms", "status loop: others' echo p99", "max", 10.0),
    Target("(8) cold start ≥ 80% of steady", "cold start: first seconds / steady", "min", 0.8),
    Target("(9) RSS growth < 1 MB", "messages through 1 conn: RSS growth", "max", 1024.0),
    Target(
        "(chat) echo 3/1 ≥ 0.95x before chat", "echo 3 conns / 1 in flight", "min", 0.95, EARLIER
    ),
    Target("(chat) echo 50/1 ≥ 0.95x before chat", "echo 50 / 1", "min", 0.95, EARLIER),
    Target("(chat) echo 50/16 ≥ 0.95x before chat", "echo 50 / 16", "min", 0.95, EARLIER),
    Target("(chat) fanout: no message lost", "fanout: messages lost", "max", 0.0),
)

# results[server][scenario] = one summary per round
Results = dict[str, dict[str, list[dict[str, object]]]]


def free_port() -> int:
    """A TCP port that is free now on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    """Return once ``port`` accepts connections; raise if the server exits or is too slow."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} in {START_TIMEOUT} s")


@contextmanager
def running(server: Server) -> Iterator[tuple[int, int]]:
    """Start ``server`` on a free port; yields (port, pid); stops it on the way out."""
    port = free_port()
    environment = dict(os.environ)
    if server.source is not None:
        environment["PYTHONPATH"] = str(server.source)
    process = subprocess.Popen(
        server.command(port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    try:
        wait_for_port(port, process)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_round(servers: Sequence[Server], plan: Sequence[Scenario], results: Results) -> None:
    """Start each server in turn and run every scenario that applies to it."""
    for server in servers:
        with running(server) as (port, pid):
            for scenario in plan:
                if not server.runs(scenario):
                    continue
                options = merge_options(server.load, scenario.options, port, pid)
                print(f"  {server.name}: {scenario.key}", file=sys.stderr, flush=True)
                try:
                    measurement = run_bench_options(options)
                except BenchFailedError as error:
                    print(f"  {server.name}: {scenario.key} failed: {error}", file=sys.stderr)
                    continue
                if scenario.key == "warm-up":
                    continue
                summary = summarize(measurement)
                check_errors(server.name, scenario.key, measurement)
                results.setdefault(server.name, {}).setdefault(scenario.key, []).append(summary)
            server_results = results.get(server.name, {})
            if "cold" in server_results and "echo 50/1" in server_results:
                cold = server_results["cold"][-1]
                steady = server_results["echo 50/1"][-1]
                cold["cold_ratio"] = _number(cold["rate"]) / _number(steady["rate"])


def merge_options(load: BenchOptions, scenario: BenchOptions, port: int, pid: int) -> BenchOptions:
    """The scenario's options with the server's way of talking, port and pid."""
    return replace(
        scenario,
        port=port,
        server_pid=pid,
        line_protocol=load.line_protocol,
        request=load.request,
        expect=load.expect,
        quit=load.quit,
    )


def check_errors(server: str, scenario: str, measurement: Measurement) -> None:
    """Report wrong replies loudly: a fast wrong answer is no result."""
    if measurement.errors:
        print(
            f"  {server}: {scenario}: {measurement.errors} errors: {measurement.error_samples}",
            file=sys.stderr,
        )


def _number(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


def values(results: Results, server: str, figure: Figure) -> list[float]:
    """A figure's value in each round for ``server`` (empty if it was not measured)."""
    rounds = results.get(server, {}).get(figure.scenario, [])
    return [
        _number(summary[figure.key]) * figure.scale for summary in rounds if figure.key in summary
    ]


def saturated(results: Results, server: str, figure: Figure) -> bool:
    """Whether the load generator saturated a core in any round of this figure."""
    rounds = results.get(server, {}).get(figure.scenario, [])
    return any(summary.get("saturated") for summary in rounds)


def ratios(results: Results, figure: Figure, against: str) -> list[float]:
    """ackchat's figure divided by ``against``'s, round by round."""
    mine, theirs = values(results, "ackchat", figure), values(results, against, figure)
    return [a / b for a, b in zip(mine, theirs, strict=False) if b]


def show(numbers: Sequence[float], mark: bool = False) -> str:
    """Median and (for several rounds) min-max, with * where the generator saturated."""
    if not numbers:
        return "-"
    star = "*" if mark else ""
    text = _short(median(numbers))
    if len(numbers) > 1:
        text += f" ({_short(min(numbers))}-{_short(max(numbers))})"
    return text + star


def _short(value: float) -> str:
    if abs(value) >= 10000:
        return f"{value / 1000:,.1f}k"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(results: Results, servers: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: each figure for each server, and ackchat's ratios."""
    against = [
        (name, label)
        for name, label in (
            ("redis-server", "ackchat/redis"),
            ("uvloop echo", "ackchat/uvloop"),
            (EARLIER, "ackchat/earlier"),
        )
        if name in servers
    ]
    headers = ["figure", "unit", *servers, *(label for _, label in against)]
    rows = []
    for figure in FIGURES:
        row = [figure.label, figure.unit]
        for server in servers:
            row.append(show(values(results, server, figure), saturated(results, server, figure)))
        for name, _ in against:
            row.append(show(ratios(results, figure, name)))
        rows.append(row)
    return headers, rows


def target_rows(results: Results) -> list[list[str]]:
    """Each target of the issue, ackchat's value and whether it is met."""
    rows = []
    by_label = {figure.label: figure for figure in FIGURES}
    for target in TARGETS:
        figure, against = by_label[target.figure], target.against
        numbers = (
            ratios(results, figure, against) if against else values(results, "ackchat", figure)
        )
        if not numbers:
            rows.append([target.label, "not measured", "-"])
            continue
        value = median(numbers)
        unit = "x" if against else f" {figure.unit}"
        rows.append(
            [target.label, f"{_short(value)}{unit}", "met" if target.met(value) else "MISSED"]
        )
    return rows


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    description = {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "uvloop": _version("uvloop"),
        "kernel": platform.release(),
        "ackchat commit": _git("describe", "--always", "--dirty"),
    }
    if shutil.which("redis-server"):
        output = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout
        description["redis-server"] = output.split("v=")[1].split()[0] if "v=" in output else "?"
    return description


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _git(*arguments: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() or "not a git checkout"


def report(
    results: Results, servers: Sequence[str], info: Mapping[str, str], command: str, rounds: int
) -> str:
    """The Markdown that goes between the markers in docs/BENCHMARKS.md."""
    headers, rows = table(results, servers)
    machine_line = ", ".join(f"{key} {value}" for key, value in info.items())
    return "\n\n".join(
        [
            f"Command: `{command}` — median of {rounds} rounds (min-max in brackets).",
            f"Machine: {machine_line}.",
            format_markdown_table(headers, rows),
            "\\* the load generator used ≥90% of a core in at least one round: the figure"
            " may be the generator's limit, not the server's.",
            format_markdown_table(
                ["target (issue #3, chat issue)", "ackchat", "result"], target_rows(results)
            ),
        ]
    )


def write_document(section: str) -> None:
    """Replace the part of docs/BENCHMARKS.md between the markers with ``section``."""
    text = (
        DOCUMENT.read_text(encoding="utf-8")
        if DOCUMENT.exists()
        else (f"# Benchmarks\n\n{BEGIN_MARK}\n{END_MARK}\n")
    )
    head, begin, rest = text.partition(BEGIN_MARK)
    _, end, tail = rest.partition(END_MARK)
    if not begin or not end:
        raise RuntimeError(f"{DOCUMENT} lacks the {BEGIN_MARK} / {END_MARK} markers")
    DOCUMENT.write_text(f"{head}{BEGIN_MARK}\n{section}\n{END_MARK}{tail}", encoding="utf-8")


@contextmanager
def earlier_checkout(revision: str) -> Iterator[tuple[Server, str]]:
    """Check ``revision`` out into a temporary worktree; yields its server and commit.

    The worktree is removed on the way out, whatever happens in between.
    """
    commit = _git("rev-parse", "--short", f"{revision}^{{commit}}")
    if commit == "not a git checkout":
        raise SystemExit(f"compare.py: --against {revision}: no such commit")
    with tempfile.TemporaryDirectory(prefix="ackchat-earlier-") as directory:
        tree = Path(directory) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), commit],
            check=True,
        )
        try:
            yield Server(EARLIER, earlier_command, source=tree / "src", only=ECHO_KEYS), commit
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )


def chart(results: Results, servers: Sequence[str], path: Path) -> None:
    """Bar charts of the main figures per server, with min-max error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [FIGURES[0], FIGURES[1], FIGURES[2], FIGURES[4], FIGURES[5], FIGURES[6]]
    figure, axes = plt.subplots(2, 3, figsize=(15, 8))
    for axis, item in zip(axes.flat, shown, strict=True):
        heights, lower, upper = [], [], []
        for server in servers:
            numbers = values(results, server, item) or [0.0]
            middle = median(numbers)
            heights.append(middle)
            lower.append(middle - min(numbers))
            upper.append(max(numbers) - middle)
        axis.bar(
            servers,
            heights,
            yerr=[lower, upper],
            capsize=4,
            color=["tab:red", "tab:blue", "tab:gray", "tab:green", "tab:orange"][: len(servers)],
        )
        axis.set_title(f"{item.label} ({item.unit})", fontsize=10)
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    figure.suptitle("ackchat vs redis-server and bare echo servers (median of rounds)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write its results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of warm-up per run")
    parser.add_argument("--no-document", action="store_true", help="leave docs/BENCHMARKS.md")
    parser.add_argument(
        "--against",
        default=BEFORE_CHAT,
        help=(
            "an earlier ackchat commit to compare the echo scenarios with"
            f" (default {BEFORE_CHAT}, the last before chat; 'none' to skip)"
        ),
    )
    arguments = parser.parse_args(argv)
    scale = QUICK if arguments.quick else FULL
    if arguments.duration is not None:
        scale = replace(scale, duration=arguments.duration)
    if arguments.warmup is not None:
        scale = replace(scale, warmup=arguments.warmup)
    rounds = arguments.rounds or (1 if arguments.quick else 3)
    raise_open_files_limit()
    servers = [s for s in SERVERS if s.name != "redis-server" or shutil.which("redis-server")]
    plan = scenarios(scale)
    results: Results = {}
    info = machine()
    with ExitStack() as stack:
        if arguments.against.lower() != "none":
            earlier, commit = stack.enter_context(earlier_checkout(arguments.against))
            servers.insert(1, earlier)
            info["earlier ackchat"] = commit
        for number in range(rounds):
            print(f"round {number + 1} of {rounds}", file=sys.stderr, flush=True)
            run_round(servers, plan, results)
    names = [server.name for server in servers]
    command = shlex.join(
        ["python", "bench/compare.py", *(argv if argv is not None else sys.argv[1:])]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    headers, rows = table(results, names)
    text = (
        format_table(headers, rows)
        + "\n\n"
        + format_table(["target", "ackchat", "result"], target_rows(results))
    )
    (RESULTS / "compare.txt").write_text(text + "\n", encoding="utf-8")
    (RESULTS / "compare.json").write_text(
        json.dumps({"command": command, "machine": info, "rounds": results}, indent=1),
        encoding="utf-8",
    )
    chart(results, names, RESULTS / "compare.png")
    if not arguments.no_document:
        write_document(report(results, names, info, command, rounds))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
