"""``ackchat bench``: a load generator for ackchat and other line servers.

The figures it reports (replies/s, latency percentiles, its own CPU) come from
:mod:`ackchat.bench.stats`, which is pure; the I/O lives in the client, scenario and
runner modules.
"""

from ackchat.bench.cli import add_bench_arguments, run_bench

__all__ = ["add_bench_arguments", "run_bench"]
