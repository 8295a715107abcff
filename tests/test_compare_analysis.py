"""compare.py's plan and analysis: which scenario runs where, ratios within a round, targets."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from comparison.analysis import (
    FIGURE,
    TARGETS,
    Results,
    add_cold_ratios,
    browser_cpu,
    ratios,
    target_value,
    values,
)
from comparison.browser import stat_times
from comparison.plan import FULL, QUICK, WARM_UP, choose_scale, chosen, scenario_names, scenarios
from comparison.servers import (
    ACKCHAT,
    EARLIER,
    HTTP,
    REDIS,
    STREAMS,
    UVLOOP,
    ackchat_command,
    lineup,
    with_http,
)
from fake_runs import fake_http_run, fake_results, summary

COMPARISON = Path(__file__).resolve().parent.parent / "bench" / "comparison"


def test_ratios_pair_rounds_by_number_not_by_position() -> None:
    echo = FIGURE["echo 50 / 1"]
    results = fake_results()
    # redis ran only in round 2: one ratio, 110k / 100k, not round 1's 120k / 100k.
    assert ratios(results, echo, REDIS) == [pytest.approx(1.1)]
    assert ratios(results, echo, EARLIER) == [pytest.approx(1.2), pytest.approx(1.1)]
    assert ratios(results, echo, STREAMS) == []


def test_values_are_scaled_to_the_figures_unit() -> None:
    assert values(fake_results(), ACKCHAT, FIGURE["idle: memory per connection"]) == [
        pytest.approx(2580 / 1024)
    ]
    assert values(fake_results(), STREAMS, FIGURE["idle: memory per connection"]) == []


def test_cold_start_is_divided_by_the_steady_rate_of_its_own_round() -> None:
    results: Results = {
        ACKCHAT: {
            "cold": [summary(1, rate=50.0), summary(2, rate=90.0), summary(3, rate=10.0)],
            "echo 50/1": [summary(2, rate=100.0), summary(1, rate=200.0)],
        }
    }
    add_cold_ratios(results)
    figure = FIGURE["cold start: first seconds / steady"]
    # Round 3 has no steady rate to divide by: it has no ratio.
    assert values(results, ACKCHAT, figure) == [0.25, 0.9]


def test_targets_are_judged_on_the_median_or_not_at_all() -> None:
    target = {target.label: target for target in TARGETS}
    results = fake_results()
    assert target_value(results, target["(1) echo 50/1 ≥ 0.85x uvloop echo"]) == pytest.approx(
        (120 / 130 + 110 / 125) / 2
    )
    assert target_value(results, target["(6) churn ≥ 0.5x redis"]) is None
    lost = target["(chat) fanout: no message lost"]
    assert target_value(results, lost) == 0
    assert lost.met(0)
    assert not lost.met(1)


def test_http_targets_are_ackchat_http_over_ackchat_within_each_round() -> None:
    target = {target.label: target for target in TARGETS}
    results = fake_http_run().results
    echo = target["(http) echo 50/1 ≥ 0.95x ackchat"]
    assert (echo.server, echo.against) == (HTTP, ACKCHAT)
    # 97k/100k in round 1 and 196k/200k in round 2, not 97k/200k or the medians' ratio.
    assert ratios(results, FIGURE["echo 50 / 1"], ACKCHAT, HTTP) == [
        pytest.approx(0.97),
        pytest.approx(0.98),
    ]
    assert target_value(results, echo) == pytest.approx(0.975)
    assert echo.met(0.975)
    churn = target["(http) churn ≥ 0.95x ackchat"]
    assert target_value(results, churn) == pytest.approx(0.9)
    assert not churn.met(0.9)
    assert target_value(results, target["(http) echo 3/1 ≥ 0.95x ackchat"]) is None
    # Without ackchat http, the targets are not measured; ackchat's own are unchanged.
    assert target_value(fake_results(), echo) is None
    assert target_value(results, target["(1) echo 50/1 ≥ 0.65x redis"]) is None


def test_http_targets_cover_echo_and_churn_with_5_percent() -> None:
    http = [target for target in TARGETS if target.server == HTTP]
    assert {target.figure for target in http} == {
        "echo 3 conns / 1 in flight",
        "echo 50 / 1",
        "echo 50 / 16",
        "churn 50 parallel",
    }
    assert all(
        (target.kind, target.bound, target.against) == ("min", 0.95, ACKCHAT) for target in http
    )
    assert all(target.server == ACKCHAT for target in TARGETS if target not in http)


def test_the_browsers_cpu_is_collected_from_ackchat_https_scenarios_only() -> None:
    assert sorted(browser_cpu(fake_http_run().results)) == [4.0, 6.0, 10.0]
    assert browser_cpu(fake_results()) == []


def test_every_target_names_a_figure() -> None:
    assert all(target.figure in FIGURE for target in TARGETS)


def test_the_earlier_ackchat_runs_the_hot_paths_only_and_chat_scenarios_ackchat_only() -> None:
    plan = {scenario.key: scenario for scenario in scenarios(QUICK)}
    hot = [WARM_UP, "echo 3/1", "echo 50/1", "echo 50/16", "churn 50"]
    for variant in (EARLIER, HTTP):
        assert [key for key, scenario in plan.items() if scenario.applies_to(variant)] == hot
    for key in ("status", "messages"):
        assert plan[key].applies_to(ACKCHAT)
        assert not plan[key].applies_to(REDIS)
    for key in ("fanout", "fanout 100", "fanout 10", "fanout window 1", "fanout moderate"):
        assert plan[key].applies_to(ACKCHAT)
        assert plan[key].applies_to(REDIS)
        assert not plan[key].applies_to(UVLOOP)
        assert plan[key].options.pipeline == (1 if key == "fanout window 1" else 64)
    assert all(plan[key].applies_to(UVLOOP) for key in ("cold", "idle", "churn 50"))
    assert plan["fanout"].options.connections == QUICK.receivers


def test_scenarios_are_chosen_by_group_or_key_with_the_warm_up_before_them() -> None:
    plan = scenarios(QUICK)
    assert chosen(plan, []) == plan
    assert [scenario.key for scenario in chosen(plan, ["echo", "churn"])] == [
        WARM_UP,
        "echo 3/1",
        "echo 50/1",
        "echo 50/16",
        "churn 50",
    ]
    assert [scenario.key for scenario in chosen(plan, ["echo 50/1", "fanout 10"])] == [
        WARM_UP,
        "echo 50/1",
        "fanout 10",
    ]
    names = scenario_names(plan)
    assert names[:7] == ["cold", "echo", "idle", "churn", "status", "fanout", "messages"]
    assert "echo 50/16" in names
    assert WARM_UP not in names
    assert all(chosen(plan, [name]) != [] for name in names)


def test_ackchat_http_is_ackchat_with_its_http_side_run_right_after_it() -> None:
    names = [server.name for server in lineup(None, redis=False, dashboard=True)]
    assert names[:2] == [ACKCHAT, HTTP]
    assert HTTP not in [server.name for server in lineup(None, redis=False)]
    http = lineup(None, redis=False, dashboard=True)[1]
    assert http.dashboard
    assert http.command(1234) == ackchat_command(1234)
    assert with_http(http.command, 8080)(1234) == [
        *ackchat_command(1234),
        "--http",
        "127.0.0.1:8080",
    ]


def test_a_proc_stat_line_gives_the_parent_and_the_cpu_ticks() -> None:
    # The command name may hold spaces and brackets; utime, stime, cutime, cstime count.
    line = "4242 (Web (Content) 1) S 17 4242 4242 0 -1 4194560 1 2 3 4 50 7 3 1 20 0 9 0 100"
    assert stat_times(line) == (17, 50 + 7 + 3 + 1)


def test_the_command_line_overrides_the_scale() -> None:
    assert choose_scale(False, None, None, None) == FULL
    assert choose_scale(True, None, None, None) == QUICK
    scale = choose_scale(True, 2, 3.0, 0.0)
    assert (scale.rounds, scale.duration, scale.warmup, scale.idle) == (2, 3.0, 0.0, QUICK.idle)


PURE = ("plan", "analysis", "report")
IMPURE = {"os", "socket", "subprocess", "tempfile", "shutil", "time", "matplotlib"}


@pytest.mark.parametrize("module", PURE)
def test_plan_analysis_and_report_do_no_io(module: str) -> None:
    tree = ast.parse((COMPARISON / f"{module}.py").read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {name for name in imported if name.split(".")[0] in IMPURE}
