"""The pure side of the benchmark: latency histograms, reply checks, merging and tables.

Nothing here does I/O or reads a clock, so the figures a run reports can be checked on
known samples. Latencies are kept in a histogram rather than as raw samples so that the
results of several worker processes merge exactly and cheaply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# A latency is kept to this many significant bits: a bucket is less than 1% wide.
SIGNIFICANT_BITS = 7
# A load generator process above this share of one core is taken to be the bottleneck.
SATURATION = 0.9
# The fanout scenario's counts (kept as floats while merged), shown as whole numbers.
FANOUT_COUNTS = (
    "messages_sent",
    "messages_in_window",
    "deliveries_in_order",
    "order_violations",
    "receivers_unfinished",
    "slow_reader_warnings",
)
# A table cell that shows a number starts with one: ``1,234.5``, ``12.3k (11.0k-13.1k)*``,
# ``0.97x``, ``2.52 KB``; ``-`` stands for a number that was not measured.
NUMBER = re.compile(r"[-+]?\.?\d")
NOT_MEASURED = "-"


class LatencyHistogram:
    """Round-trip times in microseconds, bucketed to 7 significant bits (under 1% error)."""

    __slots__ = ("counts", "max_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.max_us = 0

    @property
    def count(self) -> int:
        """How many latencies were recorded."""
        return sum(self.counts.values())

    def record(self, microseconds: int) -> None:
        """Count one latency."""
        self.record_many((microseconds,))

    def record_many(self, values: Iterable[int]) -> None:
        """Count many latencies in microseconds (the hot path batches them)."""
        counts = self.counts
        top = self.max_us
        for value in values:
            if value > top:
                top = value
            shift = value.bit_length() - SIGNIFICANT_BITS
            if shift > 0:
                value = value >> shift << shift
            counts[value] = counts.get(value, 0) + 1
        self.max_us = top

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts to this one."""
        counts = self.counts
        for value, number in other.counts.items():
            counts[value] = counts.get(value, 0) + number
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, fraction: float) -> int:
        """The nearest-rank percentile (``fraction`` in 0..1), as its bucket's lower bound."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        total = self.count
        if total == 0:
            return 0
        if fraction == 1.0:
            return self.max_us
        rank = max(1, math.ceil(fraction * total))
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        return self.max_us


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``samples`` (any order); ``fraction`` in 0..1."""
    if not samples:
        raise ValueError("no samples")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be between 0 and 1")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    """The median; the mean of the middle two for an even count."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class ReplyRule:
    """What a correct reply is: the request plus ``suffix``, or (not exact) any line ending so."""

    suffix: bytes
    exact: bool = True

    def expected(self, request: bytes) -> bytes:
        """The exact reply to ``request`` (only meaningful for an exact rule)."""
        return request + self.suffix

    def matches(self, request: bytes, reply: bytes) -> bool:
        """Whether ``reply`` (without its line ending) correctly answers ``request``."""
        if self.exact:
            return reply == request + self.suffix
        return reply.endswith(self.suffix)


@dataclass
class Measurement:
    """What one load generator process measured in its window; merged across processes."""

    scenario: str
    connections: int
    replies: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    max_process_cpu: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    status_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    extra: dict[str, float] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Replies (or cycles) per second over the measured window."""
        return self.replies / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_fraction(self) -> float:
        """The load generator's CPU over the window, as a share of one core (all processes)."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def saturated(self) -> bool:
        """Whether a load generator process used nearly a whole core: it may be the limit."""
        return self.max_process_cpu >= SATURATION


def merge_measurements(parts: Sequence[Measurement]) -> Measurement:
    """Combine the measurements of worker processes that ran the same window in parallel."""
    if not parts:
        raise ValueError("nothing to merge")
    merged = Measurement(parts[0].scenario, connections=0)
    for part in parts:
        merged.connections += part.connections
        merged.replies += part.replies
        merged.errors += part.errors
        merged.seconds = max(merged.seconds, part.seconds)
        merged.cpu_seconds += part.cpu_seconds
        merged.max_process_cpu = max(merged.max_process_cpu, part.max_process_cpu)
        merged.latency.merge(part.latency)
        merged.status_latency.merge(part.status_latency)
        for key, value in part.extra.items():
            merged.extra[key] = merged.extra.get(key, 0.0) + value
        merged.error_samples.extend(part.error_samples)
    del merged.error_samples[10:]
    return merged


def summarize(measurement: Measurement) -> dict[str, object]:
    """The figures of a measurement as plain data, for JSON and for tables."""
    summary: dict[str, object] = {
        "scenario": measurement.scenario,
        "connections": measurement.connections,
        "replies": measurement.replies,
        "errors": measurement.errors,
        "seconds": round(measurement.seconds, 3),
        "rate": round(measurement.rate, 1),
        "cpu_percent": round(measurement.cpu_fraction * 100, 1),
        "max_process_cpu_percent": round(measurement.max_process_cpu * 100, 1),
        "saturated": measurement.saturated,
    }
    for prefix, histogram in (
        ("latency", measurement.latency),
        ("status", measurement.status_latency),
    ):
        if histogram.count:
            for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
                summary[f"{prefix}_{name}_us"] = histogram.percentile(fraction)
            summary[f"{prefix}_max_us"] = histogram.max_us
    summary.update({key: round(value, 3) for key, value in measurement.extra.items()})
    if measurement.scenario == "fanout":
        summary.update(fanout_figures(measurement))
    if measurement.error_samples:
        summary["error_samples"] = list(measurement.error_samples)
    return summary


def fanout_figures(measurement: Measurement) -> dict[str, object]:
    """The fanout scenario's derived figures, from its merged counts.

    Every receiver should get every message the sender sent: what did not arrive in order
    is lost, whether its receiver saw a gap or never heard the final message.
    """
    extra = measurement.extra
    sent = int(extra.get("messages_sent", 0))
    expected = sent * measurement.connections
    seconds = measurement.seconds
    counts = {key: int(value) for key, value in extra.items() if key in FANOUT_COUNTS}
    return {
        **counts,
        "receivers": measurement.connections,
        "deliveries_expected": expected,
        "messages_lost": expected - int(extra.get("deliveries_in_order", 0)),
        "messages_per_s": round(extra.get("messages_in_window", 0) / seconds, 1) if seconds else 0,
    }


def failed_checks(summary: Mapping[str, object]) -> list[str]:
    """What a fanout run's summary shows went wrong beyond wrong replies (empty if none)."""
    problems = []
    for key in ("messages_lost", "order_violations", "receivers_unfinished"):
        value = summary.get(key, 0)
        if isinstance(value, int | float) and value:
            problems.append(f"{key.replace('_', ' ')}: {value:g}")
    return problems


def numeric_columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[bool]:
    """For each column, whether it holds numbers: some, and nothing but numbers or ``-``."""
    for row in rows:
        if len(row) != len(headers):
            raise ValueError("every row needs one cell per header")
    columns = [[row[index] for row in rows] for index in range(len(headers))]
    return [
        any(map(_is_number, cells))
        and all(_is_number(cell) or cell == NOT_MEASURED for cell in cells)
        for cells in columns
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: columns padded to their widest cell, text left, numbers right.

    A column of numbers is right-aligned with its header; in a column of text and numbers
    (a figure/value list) each number is still right-aligned.
    """
    numeric = numeric_columns(headers, rows)
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def render(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if right or _is_number(cell) else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(headers), rule, *(render(row) for row in rows)])


def format_markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table with the same cells, columns of numbers right-aligned."""
    numeric = numeric_columns(headers, rows)
    rule = "|" + "".join("---:|" if right else "---|" for right in numeric)
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def format_count(value: float) -> str:
    """A count or rate made short: 950, 12.3k, 1.53M."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}M"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    if value >= 1000:
        return f"{value / 1000:.2f}k"
    return f"{value:.0f}"


def summary_rows(summary: Mapping[str, object]) -> list[tuple[str, str]]:
    """The (figure, value) rows that ``ackchat bench`` prints for one run."""
    return [
        (key.replace("_", " "), _show(value))
        for key, value in summary.items()
        if key != "error_samples"
    ]


def summary_notes(summary: Mapping[str, object]) -> list[str]:
    """The lines below that table: the first wrong replies, and whether to trust the rate."""
    samples = summary.get("error_samples", [])
    notes = [f"error: {sample}" for sample in samples] if isinstance(samples, list) else []
    if summary.get("saturated"):
        notes.append("note: the load generator used a whole core: it may be the bottleneck.")
    return notes


def format_summary(summary: Mapping[str, object]) -> str:
    """What ``ackchat bench`` prints for one run: the table, then its notes below it."""
    table = format_table(("figure", "value"), summary_rows(summary))
    notes = summary_notes(summary)
    return "\n\n".join([table, "\n".join(notes)]) if notes else table


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return str(value)


def _is_number(cell: str) -> bool:
    return NUMBER.match(cell) is not None
