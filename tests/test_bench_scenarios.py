"""Short runs of every benchmark scenario: against an in-process server and the baselines.

These check that each scenario completes, counts and verifies every reply; not speed.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ackchat.bench.client import BenchError
from ackchat.bench.runner import run_bench_options
from ackchat.bench.scenarios import run_scenario
from ackchat.settings import BenchSettings
from conftest import ServerFactory, snapshot

BASELINES = Path(__file__).resolve().parent.parent / "bench" / "baselines"
# A bound on each run; the request limits end them much sooner.
SHORT = BenchSettings(connections=50, warmup=0.0, duration=10.0)


async def test_echo_checks_every_reply(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=10)
    options = replace(SHORT, port=server.port, connections=4, pipeline=4, requests=300)
    measurement = await run_scenario(options)
    assert measurement.errors == 0, measurement.error_samples
    assert measurement.connections == 4
    assert measurement.replies >= 300
    assert measurement.latency.count == measurement.replies


async def test_echo_counts_replies_that_do_not_match(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=10)
    options = replace(SHORT, port=server.port, connections=2, requests=50, expect="+PONG")
    measurement = await run_scenario(options)
    assert measurement.replies >= 50
    assert measurement.errors >= measurement.replies
    assert "+PONG" in measurement.error_samples[0]


async def test_echo_reads_server_memory(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=10)
    options = replace(SHORT, port=server.port, connections=1, requests=100, server_pid=os.getpid())
    measurement = await run_scenario(options)
    assert measurement.errors == 0
    assert measurement.extra["rss_after_kb"] > 0


async def test_connect_cycles_through_greeting_and_exit(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=10)
    options = replace(SHORT, scenario="connect", port=server.port, connections=5, requests=40)
    measurement = await run_scenario(options)
    assert measurement.errors == 0, measurement.error_samples
    assert measurement.replies >= 40
    assert snapshot(server).seen >= 40


async def test_idle_holds_named_clients(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=30)
    options = replace(
        SHORT,
        scenario="idle",
        port=server.port,
        connections=25,
        duration=0.0,
        server_pid=os.getpid(),
    )
    measurement = await run_scenario(options)
    assert measurement.connections == 25
    assert snapshot(server).seen == 25
    assert "bytes_per_connection" in measurement.extra


async def test_idle_fails_when_the_server_is_full(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=3)
    options = replace(SHORT, scenario="idle", port=server.port, connections=4, duration=0.0)
    with pytest.raises(BenchError, match="full"):
        await run_scenario(options)


async def test_status_fills_the_cache_and_times_the_reply(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=100)
    options = replace(
        SHORT,
        scenario="status",
        port=server.port,
        connections=3,
        requests=200,
        cache_fill=30,
        status_clients=2,
        status_repeats=3,
    )
    measurement = await run_scenario(options)
    assert measurement.errors == 0, measurement.error_samples
    assert measurement.extra["status_entries"] >= 31
    assert measurement.extra["status_alone_max_ms"] > 0
    assert measurement.replies >= 200


@pytest.fixture(scope="module", params=["echo_uvloop.py", "echo_streams.py"])
def baseline(request: pytest.FixtureRequest) -> Iterator[int]:
    """A baseline echo server in its own process; yields its port."""
    process = subprocess.Popen(
        [sys.executable, str(BASELINES / request.param), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=10), "the baseline did not start"
        line = process.stdout.readline()
        assert line.startswith("listening on "), line
        yield int(line.split()[-1])
    finally:
        process.terminate()
        process.wait(10)


LINE = replace(SHORT, line_protocol=True)


async def test_echo_against_a_baseline(baseline: int) -> None:
    options = replace(LINE, port=baseline, connections=3, pipeline=8, requests=300)
    measurement = await run_scenario(options)
    assert measurement.errors == 0, measurement.error_samples
    assert measurement.replies >= 300


async def test_connect_and_idle_against_a_baseline(baseline: int) -> None:
    cycles = await run_scenario(replace(LINE, scenario="connect", port=baseline, requests=30))
    assert cycles.errors == 0, cycles.error_samples
    assert cycles.replies >= 30
    held = await run_scenario(
        replace(LINE, scenario="idle", port=baseline, connections=20, duration=0.0)
    )
    assert held.connections == 20


def test_workers_split_connections_and_merge_results(baseline: int) -> None:
    options = replace(LINE, port=baseline, connections=4, workers=2, requests=400)
    measurement = run_bench_options(options)
    assert measurement.errors == 0, measurement.error_samples
    assert measurement.connections == 4
    assert measurement.replies >= 400
    assert measurement.latency.count == measurement.replies
    assert measurement.cpu_seconds > 0
