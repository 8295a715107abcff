"""The benchmark's pure parts: percentiles, histograms, merging, reply checks and tables."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from ackchat.bench.client import BenchError, EchoConnection, Tally
from ackchat.bench.stats import (
    LatencyHistogram,
    Measurement,
    ReplyRule,
    format_markdown_table,
    format_summary,
    format_table,
    median,
    merge_measurements,
    numeric_columns,
    percentile,
    summarize,
    summary_notes,
    summary_rows,
)


def histogram_of(values: list[int]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.record_many(values)
    return histogram


def test_percentile_nearest_rank_on_known_samples() -> None:
    samples = [float(n) for n in range(100, 0, -1)]
    assert percentile(samples, 0.5) == 50
    assert percentile(samples, 0.9) == 90
    assert percentile(samples, 0.99) == 99
    assert percentile(samples, 1.0) == 100
    assert percentile(samples, 0.0) == 1
    assert percentile([7.0], 0.99) == 7


def test_percentile_rejects_no_samples_and_bad_fractions() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], 1.5)


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_histogram_is_exact_below_128_microseconds() -> None:
    values = [n % 120 + 1 for n in range(1000)]
    histogram = histogram_of(values)
    assert histogram.count == 1000
    for fraction in (0.5, 0.9, 0.99):
        assert histogram.percentile(fraction) == percentile([float(v) for v in values], fraction)
    assert histogram.max_us == 120
    assert histogram.percentile(1.0) == 120


def test_histogram_buckets_large_values_within_one_percent() -> None:
    values = [1000 + 37 * n for n in range(5000)]
    histogram = histogram_of(values)
    for fraction in (0.5, 0.9, 0.99):
        exact = percentile([float(v) for v in values], fraction)
        assert exact * 0.99 <= histogram.percentile(fraction) <= exact
    assert histogram.max_us == max(values)


def test_empty_histogram_reports_zero() -> None:
    assert LatencyHistogram().percentile(0.99) == 0


def test_merged_histograms_equal_one_histogram_of_all_samples() -> None:
    first = [5, 90, 300, 4000, 70000]
    second = [6, 91, 299, 123456, 2]
    merged = histogram_of(first)
    merged.merge(histogram_of(second))
    whole = histogram_of(first + second)
    assert merged.counts == whole.counts
    assert merged.max_us == whole.max_us == 123456
    assert merged.percentile(0.5) == whole.percentile(0.5)


def test_merge_measurements_adds_counts_and_keeps_the_window() -> None:
    parts = [
        Measurement(
            "echo",
            connections=25,
            replies=1000,
            errors=1,
            seconds=2.0,
            cpu_seconds=1.0,
            max_process_cpu=0.5,
            latency=histogram_of([100] * 1000),
            extra={"rss_growth_kb": 4.0},
            error_samples=["first"],
        ),
        Measurement(
            "echo",
            connections=25,
            replies=3000,
            seconds=2.1,
            cpu_seconds=1.89,
            max_process_cpu=0.9,
            latency=histogram_of([200] * 3000),
        ),
    ]
    merged = merge_measurements(parts)
    assert merged.connections == 50
    assert merged.replies == 4000
    assert merged.errors == 1
    assert merged.seconds == 2.1
    assert merged.rate == pytest.approx(4000 / 2.1)
    assert merged.cpu_fraction == pytest.approx(2.89 / 2.1)
    assert merged.saturated
    assert merged.latency.count == 4000
    assert merged.latency.percentile(0.25) == 100
    assert merged.latency.percentile(0.5) == 200
    assert merged.extra == {"rss_growth_kb": 4.0}
    assert merged.error_samples == ["first"]


def test_merge_needs_something_to_merge() -> None:
    with pytest.raises(ValueError, match="nothing"):
        merge_measurements([])


def test_summary_holds_percentiles_and_saturation() -> None:
    measurement = Measurement(
        "echo", connections=3, replies=200, seconds=2.0, cpu_seconds=1.0, max_process_cpu=0.5
    )
    measurement.latency.record_many(range(1, 101))
    summary = summarize(measurement)
    assert summary["rate"] == 100.0
    assert summary["cpu_percent"] == 50.0
    assert summary["latency_p50_us"] == 50
    assert summary["latency_p99_us"] == 99
    assert summary["latency_max_us"] == 100
    assert summary["saturated"] is False
    assert "status_p50_us" not in summary
    assert summary_notes(summary) == []


def test_summary_notes_warn_when_the_generator_saturated() -> None:
    measurement = Measurement("echo", connections=1, seconds=1.0, max_process_cpu=0.95)
    summary = summarize(measurement)
    assert ("saturated", "yes") in summary_rows(summary)
    assert any("bottleneck" in note for note in summary_notes(summary))


def test_summary_puts_error_samples_below_the_table_not_in_a_column() -> None:
    long_sample = "expected b'c0m0-xxxxxxxxxxx ACK', got b'" + "y" * 150 + "'"
    measurement = Measurement(
        "echo", connections=1, replies=1000, errors=2, seconds=1.0, max_process_cpu=0.95
    )
    measurement.error_samples = [long_sample, "the server closed the connection"]
    lines = format_summary(summarize(measurement)).splitlines()
    table = lines[: lines.index("")]
    below = lines[lines.index("") + 1 :]
    assert all(len(line) < 40 for line in table), table
    assert "replies                    1,000" in table
    assert below == [
        f"error: {long_sample}",
        "error: the server closed the connection",
        "note: the load generator used a whole core: it may be the bottleneck.",
    ]


def test_exact_rule_wants_the_request_and_suffix() -> None:
    rule = ReplyRule(b" ACK")
    assert rule.expected(b"hello") == b"hello ACK"
    assert rule.matches(b"hello", b"hello ACK")
    assert not rule.matches(b"hello", b"hellO ACK")
    assert not rule.matches(b"hello", b"hello ACK ")
    assert not rule.matches(b"hello", b"other ACK")


def test_suffix_rule_wants_only_the_ending() -> None:
    rule = ReplyRule(b"+PONG", exact=False)
    assert rule.matches(b"PING", b"+PONG")
    assert not rule.matches(b"PING", b"-ERR unknown command")


def test_table_aligns_text_left_and_numbers_right() -> None:
    text = format_table(("figure", "value"), [("rate", "1,234.5"), ("scenario", "echo")])
    assert text.splitlines() == [
        "figure    value",
        "--------  -------",
        "rate      1,234.5",
        "scenario  echo",
    ]


def test_tables_reject_rows_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="one cell per header"):
        format_table(("a", "b"), [("1",)])
    with pytest.raises(ValueError, match="one cell per header"):
        format_markdown_table(("a", "b"), [("1", "2", "3")])


# Cells as compare.py shows them: median (min-max), * for a saturated generator, - unmeasured.
COMPARE_HEADERS = ("figure", "unit", "ackchat", "redis-server", "ackchat/redis")
COMPARE_ROWS = [
    ("echo 50 / 16", "replies/s", "1,222.5k (1,104.3k-1,230.4k)*", "834.1k", "1.37 (1.32-1.47)"),
    ("idle: memory per connection", "KB", "2.52", "-", "0.27"),
    ("p99 at 50 / 1", "µs", "1,000 (968-1,088)*", "1,024", "0.98x"),
]


def test_numeric_columns_are_those_of_numbers_and_unmeasured_cells() -> None:
    assert numeric_columns(COMPARE_HEADERS, COMPARE_ROWS) == [False, False, True, True, True]
    assert numeric_columns(("figure", "value"), [("rate", "1.5"), ("scenario", "echo")]) == [
        False,
        False,
    ]
    assert numeric_columns(("a",), [("-",)]) == [False]


def test_table_right_aligns_columns_of_figures_with_ranges_and_units() -> None:
    assert format_table(COMPARE_HEADERS, COMPARE_ROWS).splitlines() == [
        "figure                       unit                             ackchat"
        "  redis-server     ackchat/redis",
        "---------------------------  ---------  -----------------------------"
        "  ------------  ----------------",
        "echo 50 / 16                 replies/s  1,222.5k (1,104.3k-1,230.4k)*"
        "        834.1k  1.37 (1.32-1.47)",
        "idle: memory per connection  KB                                  2.52"
        "             -              0.27",
        "p99 at 50 / 1                µs                    1,000 (968-1,088)*"
        "         1,024             0.98x",
    ]


def test_markdown_table_right_aligns_columns_of_numbers() -> None:
    assert format_markdown_table(("a", "b"), [("x", "2")]) == "| a | b |\n|---|---:|\n| x | 2 |"
    rule = format_markdown_table(COMPARE_HEADERS, COMPARE_ROWS).splitlines()[1]
    assert rule == "|---|---|---:|---:|---:|"


class FakeTransport:
    """Collects what the connection writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def echo_connection(tally: Tally, greeting: bool) -> tuple[EchoConnection, FakeTransport]:
    connection = EchoConnection(tally, [b"a", b"b"], ReplyRule(b" ACK"), 2, greeting)
    transport = FakeTransport()
    connection.connection_made(cast(Any, transport))
    return connection, transport


async def test_echo_connection_skips_greeting_and_checks_replies_split_anyhow() -> None:
    tally = Tally()
    tally.sending = tally.measuring = True
    connection, transport = echo_connection(tally, greeting=True)
    stream = b"Welcome! You are Client01.\nSome words\n.\n"
    for byte in range(len(stream)):
        assert not connection.ready.done()
        connection.data_received(stream[byte : byte + 1])
    assert connection.ready.done()
    connection.start()
    assert transport.written == [b"a\nb\n"]
    for byte in b"a ACK\nb ACK\n":
        connection.data_received(bytes([byte]))
    assert tally.errors == 0
    assert tally.replies == 2
    assert b"".join(transport.written[1:]) == b"a\nb\n"
    tally.flush()
    assert tally.latency.count == 2


async def test_echo_connection_counts_wrong_and_unexpected_replies() -> None:
    tally = Tally()
    connection, _ = echo_connection(tally, greeting=False)
    await asyncio.wait_for(connection.ready, 1)
    connection.start()
    connection.data_received(b"b ACK\na ACK\nextra ACK\n")
    assert tally.errors == 3
    assert "expected b'a ACK', got b'b ACK'" in tally.error_samples[0]
    assert connection.drained.done()


async def test_echo_connection_reports_a_full_server() -> None:
    connection, _ = echo_connection(Tally(), greeting=True)
    connection.data_received(b"Server is full. Try again later.\n")
    with pytest.raises(BenchError, match="full"):
        await asyncio.wait_for(connection.ready, 1)
