"""A run's figures: each server's value round by round, and ackchat's ratios to others.

A ratio is taken within a round, ackchat's figure over a reference server's measured
minutes apart at most, so that the machine's drift between rounds cancels out; so is
ackchat http's over ackchat's (the same server with its HTTP side and the dashboard open).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ackchat.bench.stats import median
from comparison.plan import Scale
from comparison.servers import ACKCHAT, EARLIER, HTTP, REDIS, UVLOOP

# One scenario's summary from ``ackchat.bench.stats.summarize``, with its round number.
Summary = dict[str, object]
# results[server][scenario]: the summaries of the rounds in which it was measured.
Results = dict[str, dict[str, list[Summary]]]

# Each ratio of the table: whose figures, divided by whose, and its name.
REFERENCES = (
    (ACKCHAT, REDIS, "ackchat/redis"),
    (ACKCHAT, UVLOOP, "ackchat/uvloop"),
    (ACKCHAT, EARLIER, "ackchat/earlier"),
    (HTTP, ACKCHAT, "http/ackchat"),
)
# The browser's CPU (% of a core) during a scenario of ackchat http: a summary's key.
BROWSER_CPU = "browser_cpu_percent"


@dataclass(frozen=True)
class Run:
    """What one comparison measured, and how: everything its report is made of."""

    command: str
    scale: Scale
    servers: tuple[str, ...]
    machine: Mapping[str, str]
    results: Results
    # Each measurement that failed, in one sentence.
    failures: tuple[str, ...] = ()


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
    Figure("status all: reply time", "status", "status_alone_p50_ms", "ms"),
    Figure("status all: slowest reply", "status", "status_alone_max_ms", "ms"),
    Figure("status loop: reply time p50", "status", "status_p50_us", "ms", 1 / 1000),
    Figure("status loop: others' echo p99", "status", "latency_p99_us", "ms", 1 / 1000),
    Figure("cold start: first seconds / steady", "cold", "cold_ratio", "x"),
    Figure("messages through 1 conn: RSS growth", "messages", "rss_growth_kb", "KB"),
    Figure("fanout, 64 in flight: deliveries", "fanout", "rate", "per s"),
    Figure("fanout, 64 in flight: messages", "fanout", "messages_per_s", "per s"),
    Figure("fanout, 64 in flight: p99", "fanout", "latency_p99_us", "ms", 1 / 1000),
    Figure("fanout to 100: deliveries", "fanout 100", "rate", "per s"),
    Figure("fanout to 10: deliveries", "fanout 10", "rate", "per s"),
    Figure("fanout, 1 in flight: p50", "fanout window 1", "latency_p50_us", "ms", 1 / 1000),
    Figure("fanout, 1 in flight: p99", "fanout window 1", "latency_p99_us", "ms", 1 / 1000),
    Figure("fanout at 1,000 msg/s: p50", "fanout moderate", "latency_p50_us", "ms", 1 / 1000),
    Figure("fanout at 1,000 msg/s: p99", "fanout moderate", "latency_p99_us", "ms", 1 / 1000),
    Figure("fanout: messages lost", "fanout", "messages_lost", "deliveries"),
    Figure("fanout: order violations", "fanout", "order_violations", "count"),
    Figure("fanout: generator CPU", "fanout", "cpu_percent", "% of a core"),
)
FIGURE = {figure.label: figure for figure in FIGURES}


@dataclass(frozen=True)
class Target:
    """A goal from issue #3, #13 or the chat issue, met or not by the median of a figure of
    ``server`` (ackchat, or ackchat http for #13's).

    With ``against`` the goal is on the ratio to that server, else on the figure itself.
    """

    label: str
    figure: str
    kind: str
    bound: float
    against: str = ""
    server: str = ACKCHAT

    def met(self, value: float) -> bool:
        """Whether ``value`` (a ratio or an absolute figure) meets the bound."""
        return value >= self.bound if self.kind == "min" else value <= self.bound


TARGETS = (
    Target("(1) echo 50/1 ≥ 0.65x redis", "echo 50 / 1", "min", 0.65, REDIS),
    Target("(1) echo 50/1 ≥ 0.85x uvloop echo", "echo 50 / 1", "min", 0.85, UVLOOP),
    Target("(2) echo 50/16 ≥ 0.8x redis", "echo 50 / 16", "min", 0.8, REDIS),
    Target("(3) p99 at 50/1 ≤ 1.5x redis", "p99 at 50 / 1", "max", 1.5, REDIS),
    Target("(4) echo 3/1 ≥ 1.0x redis", "echo 3 conns / 1 in flight", "min", 1.0, REDIS),
    Target("(5) idle ≤ 4 KB per connection", "idle: memory per connection", "max", 4.0),
    Target("(6) churn ≥ 0.5x redis", "churn 50 parallel", "min", 0.5, REDIS),
    Target("(7) status all reply < 50 ms", "status all: slowest reply", "max", 50.0),
    Target("(7) others' echo p99 < 10 ms", "status loop: others' echo p99", "max", 10.0),
    Target("(8) cold start ≥ 80% of steady", "cold start: first seconds / steady", "min", 0.8),
    Target("(9) RSS growth < 1 MB", "messages through 1 conn: RSS growth", "max", 1024.0),
    Target("(hot) echo 3/1 ≥ 0.95x earlier", "echo 3 conns / 1 in flight", "min", 0.95, EARLIER),
    Target("(hot) echo 50/1 ≥ 0.95x earlier", "echo 50 / 1", "min", 0.95, EARLIER),
    Target("(hot) echo 50/16 ≥ 0.95x earlier", "echo 50 / 16", "min", 0.95, EARLIER),
    Target("(hot) churn ≥ 0.95x earlier", "churn 50 parallel", "min", 0.95, EARLIER),
    Target("(chat) fanout: no message lost", "fanout: messages lost", "max", 0.0),
    Target(
        "(fanout) 64 in flight ≥ 0.5x redis", "fanout, 64 in flight: deliveries", "min", 0.5, REDIS
    ),
    # Issue #13: with the HTTP side on and the dashboard open, within 5% of ackchat without.
    Target(
        "(http) echo 3/1 ≥ 0.95x ackchat", "echo 3 conns / 1 in flight", "min", 0.95, ACKCHAT, HTTP
    ),
    Target("(http) echo 50/1 ≥ 0.95x ackchat", "echo 50 / 1", "min", 0.95, ACKCHAT, HTTP),
    Target("(http) echo 50/16 ≥ 0.95x ackchat", "echo 50 / 16", "min", 0.95, ACKCHAT, HTTP),
    Target("(http) churn ≥ 0.95x ackchat", "churn 50 parallel", "min", 0.95, ACKCHAT, HTTP),
)


def number(value: object) -> float:
    """A summary's number as a float (summaries hold ints and floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def by_round(results: Results, server: str, figure: Figure) -> dict[int, float]:
    """A figure's value for ``server`` in each round it was measured, by round number."""
    rounds = results.get(server, {}).get(figure.scenario, [])
    return {
        int(number(summary["round"])): number(summary[figure.key]) * figure.scale
        for summary in rounds
        if figure.key in summary
    }


def values(results: Results, server: str, figure: Figure) -> list[float]:
    """A figure's values for ``server``, one per round (empty if it was not measured)."""
    return list(by_round(results, server, figure).values())


def saturated(results: Results, server: str, figure: Figure) -> bool:
    """Whether the load generator saturated a core in any round of this figure."""
    rounds = results.get(server, {}).get(figure.scenario, [])
    return any(summary.get("saturated") for summary in rounds)


def ratios(results: Results, figure: Figure, against: str, server: str = ACKCHAT) -> list[float]:
    """``server``'s figure over ``against``'s in each round where both were measured."""
    mine, theirs = by_round(results, server, figure), by_round(results, against, figure)
    return [mine[round_] / theirs[round_] for round_ in mine if theirs.get(round_)]


def target_value(results: Results, target: Target) -> float | None:
    """The median that ``target`` is judged on, or None when it was not measured."""
    figure = FIGURE[target.figure]
    numbers = (
        ratios(results, figure, target.against, target.server)
        if target.against
        else values(results, target.server, figure)
    )
    return median(numbers) if numbers else None


def browser_cpu(results: Results) -> list[float]:
    """The browser's CPU (% of a core) in each scenario and round of ackchat http."""
    return [
        number(summary[BROWSER_CPU])
        for rounds in results.get(HTTP, {}).values()
        for summary in rounds
        if BROWSER_CPU in summary
    ]


def add_cold_ratios(results: Results) -> None:
    """Give each cold-start summary its rate over the steady echo 50/1 rate of its round."""
    for scenarios in results.values():
        steady = {summary["round"]: summary for summary in scenarios.get("echo 50/1", [])}
        for cold in scenarios.get("cold", []):
            rate = number(steady[cold["round"]]["rate"]) if cold["round"] in steady else 0.0
            if rate:
                cold["cold_ratio"] = number(cold["rate"]) / rate
