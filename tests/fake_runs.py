"""Small made-up comparison results, so the report, charts and outputs run without servers."""

from __future__ import annotations

from dataclasses import replace

from comparison.analysis import Results, Run, Summary
from comparison.plan import QUICK
from comparison.servers import ACKCHAT, EARLIER, HTTP, REDIS, STREAMS, UVLOOP

SERVERS = (ACKCHAT, EARLIER, UVLOOP, STREAMS, REDIS)


def summary(round_: int, **figures: float | bool) -> Summary:
    """One scenario's summary in round ``round_``, holding only ``figures``."""
    return {"round": round_, **figures}


def fake_results() -> Results:
    """Two rounds: ackchat everywhere, the earlier ackchat on echo, redis in round 2 only.

    The streams echo server was measured on nothing at all.
    """
    return {
        ACKCHAT: {
            "echo 50/1": [
                summary(1, rate=120_000.0, latency_p99_us=1000, saturated=True),
                summary(2, rate=110_000.0, latency_p99_us=900),
            ],
            "idle": [summary(1, bytes_per_connection=2580.0)],
            "fanout": [summary(1, messages_lost=0)],
        },
        EARLIER: {"echo 50/1": [summary(1, rate=100_000.0), summary(2, rate=100_000.0)]},
        UVLOOP: {"echo 50/1": [summary(1, rate=130_000.0), summary(2, rate=125_000.0)]},
        REDIS: {"echo 50/1": [summary(2, rate=100_000.0, latency_p99_us=1000)]},
    }


def fake_run(failures: tuple[str, ...] = ()) -> Run:
    """A run of the five servers over ``fake_results``."""
    return Run(
        command="python bench/compare.py --quick",
        scale=replace(QUICK, rounds=2),
        servers=SERVERS,
        machine={"nproc": "2", "python": "3.11.7"},
        results=fake_results(),
        failures=failures,
    )


def fake_http_run() -> Run:
    """ackchat and ackchat http (with the browser's CPU): echo 50/1 in two rounds, churn in
    one; echo 3/1 was not measured."""
    results: Results = {
        ACKCHAT: {
            "echo 50/1": [summary(1, rate=100_000.0), summary(2, rate=200_000.0)],
            "churn 50": [summary(1, rate=20_000.0)],
        },
        HTTP: {
            "echo 50/1": [
                summary(1, rate=97_000.0, browser_cpu_percent=4.0),
                summary(2, rate=196_000.0, browser_cpu_percent=6.0),
            ],
            "churn 50": [summary(1, rate=18_000.0, browser_cpu_percent=10.0)],
        },
    }
    return Run(
        command="python bench/compare.py --quick --scenarios echo,churn --servers ackchat,http",
        scale=replace(QUICK, rounds=2),
        servers=(ACKCHAT, HTTP),
        machine={"nproc": "2", "python": "3.11.7"},
        results=results,
    )
