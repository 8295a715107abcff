"""``ackchat bench``: run the load its options describe, and print the report.

Exit codes (the same numbers as ``ackchat connect`` where the cause is the same):

- ``EXIT_OK`` (0): the run ended and every reply was right.
- ``EXIT_ERROR`` (1): wrong or missing replies, lost or reordered fanout messages, or the
  server did not answer as the scenario expects (another protocol, closed connections).
- ``EXIT_USAGE`` (2): bad options, or options that cannot make a run together.
- ``EXIT_CONNECT_FAILED`` (3): the server cannot be reached: refused (by the system or the
  server's address policy), unknown host, or no connection or greeting in time.
- ``EXIT_SERVER_FULL`` (4): the server could not hold the connections the run needs.
- ``EXIT_SERVER_CLOSED`` (5): the server closed connections before greeting them (it is
  shutting down, or cannot reach its shared state).
- ``EXIT_AUTH_FAILED`` (6): the server asks for a password, which the load generator
  cannot give.
- ``EXIT_INTERRUPTED`` (130): Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from ackchat.bench.client import CLOSED, CLOSED_HINT
from ackchat.bench.runner import BenchFailedError, progress_stream, run_bench_options
from ackchat.bench.stats import failed_checks, format_summary, summarize
from ackchat.client.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from ackchat.protocol.replies import GREETING_PREFIX
from ackchat.settings import BenchSettings, config_path, given_flags, resolve


def errors_sentence(summary: Mapping[str, object], line_protocol: bool) -> str:
    """What to tell the user about a run with wrong replies, with a hint at the cause."""
    errors = summary.get("errors", 0)
    samples = summary.get("error_samples", [])
    text = " ".join(str(sample) for sample in samples) if isinstance(samples, list) else ""
    if line_protocol and GREETING_PREFIX in text:
        hint = "the server greets its clients as ackchat does: leave out --line-protocol."
    elif CLOSED in text:
        hint = f"the server closed connections: {CLOSED_HINT}"
    else:
        hint = "is it the server you meant, and do --request and --expect fit it?"
    return f"{errors:,} replies were wrong or did not come (the first are listed); {hint}"


def run_bench(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run ``ackchat bench``; returns one of the exit codes in this module's docstring."""
    settings = resolve(
        BenchSettings, given_flags(arguments, BenchSettings), env, config_path(arguments, env)
    )
    options = settings.with_default_connections()
    try:
        measurement = run_bench_options(options, progress_stream())
    except BenchFailedError as error:
        print(f"ackchat bench: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("ackchat bench: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = summarize(measurement)
    summary["pipeline"] = options.pipeline
    if options.scenario == "fanout":
        # Which server's publish/subscribe the figures are of: the counts are named alike.
        summary["pubsub"] = options.pubsub
    if settings.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    problems = failed_checks(summary)
    if measurement.errors:
        problems.insert(0, errors_sentence(summary, options.line_protocol))
    for problem in problems:
        print(f"ackchat bench: {problem}", file=sys.stderr)
    return EXIT_ERROR if problems else EXIT_OK


def main() -> int:
    """``python -m ackchat.bench``: the same as ``ackchat bench``."""
    from ackchat.cli import main as ackchat_main

    return ackchat_main(["bench", *sys.argv[1:]])
