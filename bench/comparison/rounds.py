"""Running the plan: each server in turn, every scenario that applies, round after round.

A measurement that fails (the run could not be made, or a reply was wrong: a fast wrong
answer is no result) is said in one sentence and left out; the rest goes on, so that one
failure does not lose a long run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TextIO

from ackchat.bench.runner import BenchFailedError, run_bench_options
from ackchat.bench.stats import Measurement, summarize
from ackchat.settings import BenchSettings
from comparison import ComparisonError
from comparison.analysis import Results, add_cold_ratios
from comparison.browser import serving
from comparison.plan import WARM_UP, Scenario
from comparison.servers import Server


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


def run_server(
    server: Server, plan: Sequence[Scenario], number: int, results: Results, log: TextIO
) -> list[str]:
    """Start ``server`` (and the dashboard on it, for ackchat http), run each scenario of
    the plan that applies; returns the failures."""
    failures = []
    with serving(server) as served:
        for scenario in plan:
            if not scenario.applies_to(server.name):
                continue
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
                failures.append(failure)
            elif scenario.key != WARM_UP:
                summary = {**summarize(measurement), **beside, "round": number}
                results.setdefault(server.name, {}).setdefault(scenario.key, []).append(summary)
    return failures


def run_rounds(
    servers: Sequence[Server], plan: Sequence[Scenario], rounds: int, log: TextIO
) -> tuple[Results, list[str]]:
    """Every round of the plan against every server; returns the results and the failures.

    A server that does not start is a failure of that round; the next server goes on.
    """
    results: Results = {}
    failures: list[str] = []
    for number in range(1, rounds + 1):
        print(f"round {number} of {rounds}", file=log, flush=True)
        for server in servers:
            try:
                failures.extend(run_server(server, plan, number, results, log))
            except ComparisonError as error:
                failure = f"round {number}: {error}"
                print(f"  {failure}", file=log, flush=True)
                failures.append(failure)
    add_cold_ratios(results)
    return results, failures
