"""The pure side of ``bench/cluster.py``: Redis's INFO, CPU over a window, medians, ratios,
the sustained direct-message rate, and the report's table. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ackchat.bench.stats import median

EMBEDDED = "embedded"
CLUSTER = "cluster"
MODES = (EMBEDDED, CLUSTER)
# A direct-message step lags when fewer than this share of the rate's messages arrived in
# the window, or when the p99 from send to receipt is above LAG_P99_MS.
KEPT_UP = 0.95
LAG_P99_MS = 100.0

# figures[mode][key]: the value of each round, by round number.
Figures = dict[str, dict[str, dict[int, float]]]


def parse_info(text: str) -> dict[str, str]:
    """``INFO``'s ``key:value`` lines as a dict; section headers and blanks are skipped."""
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition(":")
        if separator:
            fields[key] = value
    return fields


def command_calls(info: Mapping[str, str]) -> dict[str, int]:
    """Calls per command from ``INFO commandstats``: ``cmdstat_fcall:calls=3,...``."""
    calls = {}
    for key, value in info.items():
        if not key.startswith("cmdstat_"):
            continue
        for part in value.split(","):
            name, separator, count = part.partition("=")
            if separator and name == "calls" and count.isdigit():
                calls[key.removeprefix("cmdstat_")] = int(count)
    return calls


def calls_delta(
    before: Mapping[str, int], after: Mapping[str, int], ignore: Sequence[str] = ("info",)
) -> dict[str, int]:
    """The calls of each command made between two ``command_calls``, without ``ignore``
    (the measuring's own INFO); commands not called are left out."""
    delta = {}
    for name, count in after.items():
        change = count - before.get(name, 0)
        if change > 0 and name not in ignore:
            delta[name] = change
    return delta


def calls_added(deltas: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """The calls of each command over several runs' ``calls_delta``: every command any
    run made, with its calls summed."""
    total: dict[str, int] = {}
    for delta in deltas:
        for name, count in delta.items():
            total[name] = total.get(name, 0) + count
    return total


def busiest_rate(samples: Sequence[tuple[float, float]], span: float) -> float:
    """A counter's rate per second over the busiest ``span`` seconds of ``samples``.

    Each sample is (wall seconds, the counter so far: CPU seconds, commands), in time
    order. A run's measured window is not marked in its samples, so its busiest stretch
    of the window's length stands for it; when no two samples are ``span`` apart, the
    whole of them counts (0 for fewer than two).
    """
    if len(samples) < 2:
        return 0.0
    best: float | None = None
    for first, (start_wall, start_cpu) in enumerate(samples):
        for end_wall, end_cpu in samples[first + 1 :]:
            wall = end_wall - start_wall
            if wall >= span:
                rate = (end_cpu - start_cpu) / wall
                best = rate if best is None else max(best, rate)
                break
    if best is None:
        wall = samples[-1][0] - samples[0][0]
        best = (samples[-1][1] - samples[0][1]) / wall if wall > 0 else 0.0
    return best


def cpu_percent(samples: Sequence[tuple[float, float]], span: float) -> float:
    """CPU use in % of a core over the busiest ``span`` seconds (see :func:`busiest_rate`)."""
    return 100.0 * busiest_rate(samples, span)


@dataclass(frozen=True)
class Step:
    """One rate of the direct-message staircase and what it gave."""

    rate: float
    messages_per_s: float
    p99_ms: float
    lost: int
    errors: int
    finished: bool

    @property
    def held(self) -> bool:
        """Whether the rate was sustained: nothing lost or wrong, no lag."""
        return (
            self.finished
            and self.lost == 0
            and self.errors == 0
            and self.messages_per_s >= KEPT_UP * self.rate
            and self.p99_ms <= LAG_P99_MS
        )


def sustained_rate(steps: Sequence[Step]) -> float:
    """The highest rate held with every lower rate held too (0: not even the first)."""
    best = 0.0
    for step in sorted(steps, key=lambda step: step.rate):
        if not step.held:
            break
        best = step.rate
    return best


def record(figures: Figures, mode: str, key: str, round_: int, value: float) -> None:
    """Keep ``value`` as ``mode``'s ``key`` in round ``round_``."""
    figures.setdefault(mode, {}).setdefault(key, {})[round_] = value


def ratios(figures: Figures, key: str) -> list[float]:
    """Cluster over embedded for ``key``, in each round where both were measured."""
    embedded = figures.get(EMBEDDED, {}).get(key, {})
    cluster = figures.get(CLUSTER, {}).get(key, {})
    return [cluster[round_] / embedded[round_] for round_ in cluster if embedded.get(round_)]


def spread(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(median, min, max), or None for no values."""
    if not values:
        return None
    return median(values), min(values), max(values)


@dataclass(frozen=True)
class Row:
    """A line of the report: a figure of both modes, and maybe their ratio's target."""

    label: str
    key: str
    unit: str
    # A bound on the median ratio cluster/embedded (0: no target).
    target: float = 0.0


ROWS = (
    Row("echo 50 conns / 1 in flight", "echo 50/1", "replies/s", 0.95),
    Row("echo 50 / 16", "echo 50/16", "replies/s", 0.95),
    Row("echo 50 / 1: p99", "echo 50/1 p99", "µs"),
    Row("churn 50 parallel", "churn", "cycles/s", 0.5),
    Row("churn: round trips to Redis per conn", "churn round trips", "batches"),
    Row("churn: node->Redis script calls (FCALL) per conn", "churn scripts", "calls"),
    Row("churn: commands Redis ran per conn", "churn commands", "calls"),
    Row("churn: node CPU per connection", "churn node cpu", "µs"),
    Row("direct, 1 in flight: p50", "direct alone p50", "ms"),
    Row("direct, 1 in flight: p99", "direct alone p99", "ms"),
    Row("direct, 1 in flight: messages", "direct alone rate", "per s"),
    Row("direct at moderate rate: p50", "direct p50", "ms"),
    Row("direct at moderate rate: p99", "direct p99", "ms"),
    Row("direct: highest rate held", "direct sustained", "msg/s"),
    Row("fanout to 1,000: deliveries", "fanout", "per s"),
    Row("fanout: p99", "fanout p99", "ms"),
    Row("fanout: messages lost", "fanout lost", "deliveries"),
    Row("fanout: node A CPU (sender)", "fanout cpu A", "% of a core"),
    Row("fanout: node B CPU", "fanout cpu B", "% of a core"),
    Row("fanout: node C CPU", "fanout cpu C", "% of a core"),
    Row("fanout: Redis CPU", "fanout redis cpu", "% of a core"),
    Row("fanout: Redis commands", "fanout redis ops", "per s"),
    Row("fanout: Redis used_memory after", "fanout redis memory", "MB"),
    Row("fanout: generator CPU", "fanout generator cpu", "% of a core"),
    Row("idle: node RSS per client", "idle node", "KB"),
    Row("idle: Redis used_memory per client", "idle redis", "KB"),
)


def short(value: float) -> str:
    """3 significant digits with k or M: 0.25, 950, 1.5k, 12.3M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def cell(values: Sequence[float]) -> str:
    """The median, and (over several rounds) min-max in brackets; ``-`` if none."""
    found = spread(values)
    if found is None:
        return "-"
    middle, low, high = found
    text = short(middle)
    return text + (f" ({short(low)}-{short(high)})" if len(values) > 1 else "")


def verdict(row: Row, values: Sequence[float]) -> str:
    """Whether the median ratio meets the row's target (empty when there is none)."""
    if not row.target:
        return ""
    if not values:
        return f"≥ {row.target:g}: not measured"
    met = median(values) >= row.target
    return f"≥ {row.target:g}: {'met' if met else 'MISSED'}"


def table_rows(figures: Figures) -> list[list[str]]:
    """Each row that was measured in either mode: both modes, the ratio, the target."""
    rows = []
    for row in ROWS:
        embedded = list(figures.get(EMBEDDED, {}).get(row.key, {}).values())
        cluster = list(figures.get(CLUSTER, {}).get(row.key, {}).values())
        if not embedded and not cluster:
            continue
        found = ratios(figures, row.key)
        rows.append(
            [row.label, row.unit, cell(embedded), cell(cluster), cell(found), verdict(row, found)]
        )
    return rows


HEADERS = ["figure", "unit", "embedded", "cluster", "cluster/embedded", "target"]


def missed_targets(figures: Figures) -> list[str]:
    """The labels of rows whose target was missed."""
    missed = []
    for row in ROWS:
        found = ratios(figures, row.key)
        if row.target and found and median(found) < row.target:
            missed.append(row.label)
    return missed
