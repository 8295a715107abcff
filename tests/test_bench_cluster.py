"""bench/cluster.py's pure parts (Redis's INFO, CPU over a window, the sustained rate, the
table) on made-up inputs, and its direct-message load against two real cluster nodes."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clusterstats
from backends import fresh_cluster, redis_url
from clusterload import direct
from clusterrun import FULL, QUICK, choose_scale, parser
from clusterstats import (
    CLUSTER,
    EMBEDDED,
    LAG_P99_MS,
    Figures,
    Step,
    busiest_rate,
    calls_delta,
    command_calls,
    cpu_percent,
    parse_info,
    ratios,
    record,
    sustained_rate,
    table_rows,
)
from nodes import Nodes
from redisserver import RedisServer

INFO = (
    "# Stats\r\n"
    "total_connections_received:12\r\n"
    "total_commands_processed:3456\r\n"
    "instantaneous_ops_per_sec:78\r\n"
    "\r\n"
    "# Memory\r\n"
    "used_memory:1048576\r\n"
    "used_memory_human:1.00M\r\n"
)
COMMANDSTATS = (
    "# Commandstats\r\n"
    "cmdstat_evalsha:calls=200,usec=9000,usec_per_call=45.00,rejected_calls=0,failed_calls=0\r\n"
    "cmdstat_info:calls=7,usec=70,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n"
    "cmdstat_hget:calls=480,usec=480,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n"
)


def test_parse_info_reads_every_section_and_skips_headers() -> None:
    info = parse_info(INFO)
    assert info["total_commands_processed"] == "3456"
    assert info["used_memory"] == "1048576"
    assert info["used_memory_human"] == "1.00M"
    assert not any(key.startswith("#") for key in info)


# The same strings as the regexes [a-z_]{1,20} and [A-Za-z0-9.,=:_-]{0,30}; text() draws
# them several times faster than from_regex().
keys = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=20)
values = st.text(alphabet=string.ascii_letters + string.digits + ".,=:_-", max_size=30)


@settings(max_examples=100)
@given(st.dictionaries(keys, values, max_size=20))
def test_parse_info_gives_back_what_info_wrote(fields: dict[str, str]) -> None:
    text = "# Section\r\n" + "".join(f"{key}:{value}\r\n" for key, value in fields.items())
    assert parse_info(text) == fields


def test_command_calls_reads_commandstats() -> None:
    calls = command_calls(parse_info(COMMANDSTATS))
    assert calls == {"evalsha": 200, "info": 7, "hget": 480}


def test_calls_delta_leaves_out_info_and_commands_not_called() -> None:
    before = {"evalsha": 100, "info": 3, "hget": 480}
    after = {"evalsha": 300, "info": 9, "hget": 480, "xadd": 5}
    assert calls_delta(before, after) == {"evalsha": 200, "xadd": 5}


@settings(max_examples=100)
@given(
    st.floats(0.0, 2.0),
    st.floats(0.1, 1.0),
    st.integers(2, 60),
    st.floats(0.5, 5.0),
)
def test_busiest_rate_of_a_steady_counter_is_its_rate(
    rate: float, interval: float, count: int, span: float
) -> None:
    samples = [(n * interval, n * interval * rate) for n in range(count)]
    assert busiest_rate(samples, span) == pytest.approx(rate, abs=1e-9)
    assert cpu_percent(samples, span) == pytest.approx(100 * rate, abs=1e-7)


def test_busiest_rate_finds_the_busy_stretch() -> None:
    # Idle for 2 s, busy (a whole core) for 2 s, idle for 2 s, sampled every 0.5 s.
    used = [0.0] * 5 + [0.5, 1.0, 1.5, 2.0] + [2.0] * 4
    samples = [(n * 0.5, cpu) for n, cpu in enumerate(used)]
    assert busiest_rate(samples, 2.0) == pytest.approx(1.0)
    # Longer than the samples: the whole of them.
    assert busiest_rate(samples, 60.0) == pytest.approx(2.0 / 6.0)
    assert busiest_rate(samples[:1], 1.0) == 0.0


@settings(max_examples=100)
@given(st.lists(st.floats(0.0, 4.0), min_size=1, max_size=40), st.floats(0.2, 3.0))
def test_busiest_rate_lies_within_the_rates_between_samples(
    increments: list[float], span: float
) -> None:
    # Any stretch's rate is an average of the rates between its samples.
    samples, total = [(0.0, 0.0)], 0.0
    for n, increment in enumerate(increments, 1):
        total += increment
        samples.append((n * 0.25, total))
    between = [increment / 0.25 for increment in increments]
    assert min(between) - 1e-9 <= busiest_rate(samples, span) <= max(between) + 1e-9


def held(rate: float) -> Step:
    return Step(rate, rate, 2.0, lost=0, errors=0, finished=True)


def test_a_step_is_held_only_without_loss_errors_or_lag() -> None:
    assert held(1000).held
    assert not Step(1000, 1000, 2.0, lost=1, errors=0, finished=True).held
    assert not Step(1000, 1000, 2.0, lost=0, errors=1, finished=True).held
    assert not Step(1000, 1000, 2.0, lost=0, errors=0, finished=False).held
    assert not Step(1000, 900, 2.0, lost=0, errors=0, finished=True).held
    assert not Step(1000, 1000, LAG_P99_MS + 1, lost=0, errors=0, finished=True).held


def test_sustained_rate_is_the_last_step_held_before_the_first_not_held() -> None:
    lagging = Step(8000, 5000, 300.0, 0, 0, True)
    steps = [held(1000), held(2000), held(4000), lagging, held(16000)]
    assert sustained_rate(steps) == 4000
    assert sustained_rate(list(reversed(steps))) == 4000
    assert sustained_rate([lagging]) == 0
    assert sustained_rate([]) == 0


steps = st.builds(
    Step,
    st.sampled_from([500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0]),
    st.floats(0.0, 20000.0),
    st.floats(0.0, 500.0),
    st.integers(0, 3),
    st.integers(0, 3),
    st.booleans(),
)


@settings(max_examples=200)
@given(st.lists(steps, max_size=8, unique_by=lambda step: step.rate))
def test_sustained_rate_is_held_with_every_lower_rate(made_up: list[Step]) -> None:
    rate = sustained_rate(made_up)
    assert rate == 0 or rate in {step.rate for step in made_up}
    assert all(step.held for step in made_up if step.rate <= rate)
    # No higher rate could have been chosen: the first step above is not held.
    above = sorted((step for step in made_up if step.rate > rate), key=lambda step: step.rate)
    assert not above or not above[0].held


def test_ratios_are_taken_within_a_round() -> None:
    figures: Figures = {}
    for round_, (embedded, cluster) in enumerate([(100.0, 90.0), (200.0, 190.0)], 1):
        record(figures, EMBEDDED, "echo 50/1", round_, embedded)
        record(figures, CLUSTER, "echo 50/1", round_, cluster)
    record(figures, CLUSTER, "echo 50/1", 3, 1.0)  # no embedded figure that round
    assert ratios(figures, "echo 50/1") == [0.9, 0.95]


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(st.floats(1.0, 1e6), st.floats(1.0, 1e6)),
        min_size=1,
        max_size=7,
    )
)
def test_the_table_shows_the_median_ratio_and_its_target(pairs: list[tuple[float, float]]) -> None:
    figures: Figures = {}
    for round_, (embedded, cluster) in enumerate(pairs, 1):
        record(figures, EMBEDDED, "churn", round_, embedded)
        record(figures, CLUSTER, "churn", round_, cluster)
    [row] = table_rows(figures)
    found = sorted(cluster / embedded for embedded, cluster in pairs)
    middle = len(found) // 2
    median = found[middle] if len(found) % 2 else (found[middle - 1] + found[middle]) / 2
    assert row[0] == "churn 50 parallel"
    assert row[4].split(" ")[0] == clusterstats.short(median)
    assert row[5] == f"≥ 0.5: {'met' if median >= 0.5 else 'MISSED'}"
    assert (clusterstats.missed_targets(figures) == ["churn 50 parallel"]) == (median < 0.5)


def test_rows_measured_in_neither_mode_are_left_out() -> None:
    figures: Figures = {}
    record(figures, CLUSTER, "idle redis", 1, 0.25)
    assert table_rows(figures) == [
        ["idle: Redis used_memory per client", "KB", "-", "0.25", "-", ""]
    ]


def test_quick_and_longer_runs_keep_a_bounded_budget() -> None:
    quick = choose_scale(parser().parse_args(["--quick"]))
    assert quick == QUICK
    longer = choose_scale(parser().parse_args(["--rounds", "6", "--duration", "6"]))
    assert longer.rounds == 6
    assert longer.budget == pytest.approx(FULL.budget * 2 * 2)


async def test_direct_messages_cross_from_one_node_to_another(
    nodes: Nodes, redis_server: RedisServer
) -> None:
    name = fresh_cluster()
    first, second = await nodes.start(
        2, "--redis", redis_url(redis_server.port), "--cluster-name", name
    )
    result = await direct(
        "127.0.0.1", first.port, second.port, rate=0, pipeline=8, warmup=0.1, duration=0.5
    )
    assert result.errors == 0, result.error_samples
    assert result.sent > 0
    assert (result.lost, result.violations, result.finished) == (0, 0, True)
    assert result.delivered <= result.sent


def test_calls_added_keeps_a_command_that_only_a_later_run_made() -> None:
    first = {"evalsha": 4, "xread": 1}
    second = {"evalsha": 6, "get": 2}
    assert clusterstats.calls_added([first, second]) == {"evalsha": 10, "xread": 1, "get": 2}
    assert clusterstats.calls_added([]) == {}
