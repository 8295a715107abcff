"""``ackchat bench``: its command line, and the report it prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from ackchat.bench.runner import BenchFailedError, progress_stream, run_bench_options
from ackchat.bench.scenarios import FANOUT_RECEIVERS, BenchOptions
from ackchat.bench.stats import failed_checks, format_table, summarize, summary_rows
from ackchat.settings import BenchSettings, add_arguments, config_path, given_flags, resolve

EXIT_OK = 0
EXIT_ERRORS = 1

DESCRIPTION = """\
Load an ackchat server (or any line echo server) and report replies/s, round-trip
latency (p50, p90, p99, max) and this generator's own CPU use.

scenarios:
  echo     N connections, K requests in flight each; every reply is checked
  connect  N clients in parallel repeating connect, greeting, exit, close; cycles/s
  idle     hold N idle clients; with --server-pid, server memory per connection
  status   'status all' time over a cache filled with --cache-fill clients, then the
           echo latency of N clients while --status-clients loop on 'status all'
  fanout   one sender and N receivers (default 1,000) in --room; the sender keeps K
           '/say' messages in flight (at most --rate a second); each receiver checks it
           gets every message in order and times it from the send (time.monotonic_ns);
           deliveries/s = messages x receivers received per second; the server needs
           --max-clients above N + 1

Against redis-server: --line-protocol --request PING --expect +PONG (--quit QUIT for
the connect scenario).
"""


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ackchat bench`` to ``parser`` (flag, env, ``[bench]`` table)."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_arguments(parser, BenchSettings)


def options_from(settings: BenchSettings) -> BenchOptions:
    """The options of a run from the resolved settings."""
    connections = settings.connections
    if connections == 0:
        fanout = settings.scenario == "fanout"
        connections = FANOUT_RECEIVERS if fanout else BenchOptions().connections
    return BenchOptions(
        scenario=settings.scenario,
        host=settings.host,
        port=settings.port,
        connections=connections,
        pipeline=settings.pipeline,
        warmup=settings.warmup,
        duration=settings.duration,
        requests=settings.requests,
        workers=settings.workers,
        line_protocol=settings.line_protocol,
        request=settings.request or None,
        expect=settings.expect or None,
        size=settings.size,
        quit=settings.quit or None,
        server_pid=settings.server_pid or None,
        cache_fill=settings.cache_fill,
        status_clients=settings.status_clients,
        status_repeats=settings.status_repeats,
        rate=settings.rate,
        room=settings.room,
    )


def run_bench(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run ``ackchat bench``; exit code 1 if any reply was wrong or the run failed."""
    settings = resolve(
        BenchSettings, given_flags(arguments, BenchSettings), env, config_path(arguments, env)
    )
    options = options_from(settings)
    try:
        measurement = run_bench_options(options, progress_stream())
    except (BenchFailedError, ValueError) as error:
        print(f"ackchat bench: {error}", file=sys.stderr)
        return EXIT_ERRORS
    summary = summarize(measurement)
    summary["pipeline"] = options.pipeline
    if settings.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(("figure", "value"), summary_rows(summary)))
    problems = failed_checks(summary)
    for problem in problems:
        print(f"ackchat bench: {problem}", file=sys.stderr)
    return EXIT_ERRORS if measurement.errors or problems else EXIT_OK


def main() -> int:
    """``python -m ackchat.bench``: the same as ``ackchat bench``."""
    from ackchat.cli import main as ackchat_main

    return ackchat_main(["bench", *sys.argv[1:]])
