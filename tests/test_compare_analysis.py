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
    ratios,
    target_value,
    values,
)
from comparison.plan import FULL, QUICK, WARM_UP, choose_scale, scenarios
from comparison.servers import ACKCHAT, EARLIER, REDIS, STREAMS, UVLOOP
from fake_runs import fake_results, summary

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


def test_every_target_names_a_figure() -> None:
    assert all(target.figure in FIGURE for target in TARGETS)


def test_the_earlier_ackchat_runs_the_hot_paths_only_and_chat_scenarios_ackchat_only() -> None:
    plan = {scenario.key: scenario for scenario in scenarios(QUICK)}
    earlier = [key for key, scenario in plan.items() if scenario.applies_to(EARLIER)]
    assert earlier == [WARM_UP, "echo 3/1", "echo 50/1", "echo 50/16", "churn 50"]
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
