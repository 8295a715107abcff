"""Running the plan: each server in turn, every scenario that applies, round after round.
When both ackchat and ackchat http are measured, they run side by side and take the
hot-path scenarios in turns (run_in_turns), since the HTTP side's target is a 5% bound.

A measurement that fails (the run could not be made, or a reply was wrong: a fast wrong
answer is no result) is said in one sentence and left out; the rest goes on, so that one
failure does not lose a long run.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from typing import TextIO

from ackchat.bench.runner import BenchFailedError, run_bench_options
from ackchat.bench.stats import Measurement, summarize
from ackchat.http.live import STEADY_AFTER
from ackchat.settings import BenchSettings
from comparison import ComparisonError
from comparison.analysis import Results, Summary, add_cold_ratios
from comparison.analysis import number as as_number
from comparison.browser import Served, serving
from comparison.plan import WARM_UP, Scenario
from comparison.servers import ACKCHAT, HTTP, Server

# The order in which ackchat and ackchat http take a hot-path scenario in one round.
TURNS = (ACKCHAT, HTTP, HTTP, ACKCHAT)
# The shortest warm-up of a turn, for both servers. Each turn starts its load on a
# server left idle by the other's turn, and a dashboard's feed pushes at every look for
# the first STEADY_AFTER seconds of a change, then every two seconds: under a load that
# goes on, as a server meets it, that first second comes once, not at every turn. The
# warm-up takes it, and the page's redraw of the new load.
TURN_WARMUP = STEADY_AFTER + 0.5


def merge_options(
    load: BenchSettings, scenario: BenchSettings, port: int, pid: int
) -> BenchSettings:
    """The scenario's options with the server's way of talking, its port and its pid."""
    return replace(
        scenario,
        port=port,
        server_pid=pid,
        line_protocol=load.line_protocol,
        request=load.request,
        expect=load.expect,
        quit=load.quit,
        pubsub=load.pubsub,
    )


def wrong_replies(measurement: Measurement) -> str | None:
    """Why a measurement is no result because of wrong replies, or None if all were right."""
    if not measurement.errors:
        return None
    first = f", the first: {measurement.error_samples[0]}" if measurement.error_samples else ""
    return f"{measurement.errors:,} wrong replies{first}"


def in_turns(scenario: Scenario) -> Scenario:
    """``scenario`` as a turn runs it: warmed up for TURN_WARMUP seconds at least."""
    warmup = max(scenario.options.warmup, TURN_WARMUP)
    return replace(scenario, options=replace(scenario.options, warmup=warmup))


def measure(
    server: Server, served: Served, scenario: Scenario, number: int, log: TextIO
) -> Summary | str:
    """One run of ``scenario`` against ``served``: its summary, or the failure."""
    print(f"  {server.name}: {scenario.key}", file=log, flush=True)
    options = merge_options(server.load, scenario.options, served.port, served.pid)
    try:
        with served.during() as beside:
            measurement = run_bench_options(options)
    except BenchFailedError as error:
        problem: str | None = str(error).rstrip(".")
    else:
        problem = wrong_replies(measurement)
    if problem is not None:
        failure = f"{server.name}: {scenario.key} in round {number}: {problem}."
        print(f"  {failure}", file=log, flush=True)
        return failure
    return {**summarize(measurement), **beside, "round": number}


def run_server(
    server: Server,
    plan: Sequence[Scenario],
    number: int,
    results: Results,
    log: TextIO,
    *,
    hot: bool = True,
) -> list[str]:
    """Start ``server`` (and the dashboard on it, for ackchat http), run each scenario of
    the plan that applies (without the hot-path ones unless ``hot``); returns the
    failures."""
    failures = []
    with serving(server) as served:
        for scenario in plan:
            if not scenario.applies_to(server.name) or (scenario.hot and not hot):
                continue
            outcome = measure(server, served, scenario, number, log)
            if isinstance(outcome, str):
                failures.append(outcome)
            elif scenario.key != WARM_UP:
                results.setdefault(server.name, {}).setdefault(scenario.key, []).append(outcome)
    return failures


def run_in_turns(
    plain: Server,
    http: Server,
    plan: Sequence[Scenario],
    number: int,
    results: Results,
    log: TextIO,
) -> list[str]:
    """ackchat and ackchat http side by side, started afresh: each hot-path scenario runs
    against them in TURNS (warmed up for TURN_WARMUP at least), the browser paused during
    ackchat's turns, and each one's two turns are averaged. Runs seconds apart on this
    machine differ by more than the 5% the HTTP side may cost; taken in turns, the drift
    falls on both alike. The round's figures join ``results`` only once the dashboard is
    known to have stayed live throughout (else ComparisonError). Returns the failures."""
    failures: list[str] = []
    kept: Results = {}
    with serving(plain) as plain_served, serving(http) as http_served:
        side = {ACKCHAT: (plain, plain_served), HTTP: (http, http_served)}
        for scenario in plan:
            if not scenario.hot:
                continue
            warm_up = scenario.key == WARM_UP
            turns = (ACKCHAT, HTTP) if warm_up else TURNS
            taken = scenario if warm_up else in_turns(scenario)
            done: dict[str, list[Summary]] = {ACKCHAT: [], HTTP: []}
            for name in turns:
                server, served = side[name]
                with http_served.paused() if name == ACKCHAT else nullcontext():
                    outcome = measure(server, served, taken, number, log)
                if isinstance(outcome, str):
                    failures.append(outcome)
                else:
                    done[name].append(outcome)
            if warm_up:
                continue
            for name, summaries in done.items():
                if len(summaries) == turns.count(name):
                    kept.setdefault(name, {}).setdefault(scenario.key, []).append(
                        averaged(summaries)
                    )
    for name, by_scenario in kept.items():
        for key, summaries in by_scenario.items():
            results.setdefault(name, {}).setdefault(key, []).extend(summaries)
    return failures


def averaged(summaries: Sequence[Summary]) -> Summary:
    """One summary of several runs of a scenario: numbers averaged, ``saturated`` if any
    run was, the rest as the first run had it."""
    first = summaries[0]
    merged = dict(first)
    for key, value in first.items():
        if isinstance(value, bool):
            merged[key] = any(summary[key] for summary in summaries)
        elif isinstance(value, int | float) and key != "round":
            merged[key] = sum(as_number(summary[key]) for summary in summaries) / len(summaries)
    return merged


def run_rounds(
    servers: Sequence[Server], plan: Sequence[Scenario], rounds: int, log: TextIO
) -> tuple[Results, list[str]]:
    """Every round of the plan against every server; returns the results and the failures.

    A server that does not start is a failure of that round; the next server goes on.
    """
    results: Results = {}
    failures: list[str] = []
    by_name = {server.name: server for server in servers}
    paired = ACKCHAT in by_name and HTTP in by_name
    for number in range(1, rounds + 1):
        print(f"round {number} of {rounds}", file=log, flush=True)
        for server in servers:
            try:
                if not paired or server.name not in (ACKCHAT, HTTP):
                    failures.extend(run_server(server, plan, number, results, log))
                elif server.name == ACKCHAT:
                    failures.extend(run_server(server, plan, number, results, log, hot=False))
                    failures.extend(run_in_turns(server, by_name[HTTP], plan, number, results, log))
            except ComparisonError as error:
                failure = f"round {number}: {error}"
                print(f"  {failure}", file=log, flush=True)
                failures.append(failure)
    add_cold_ratios(results)
    return results, failures
