"""``ackchat bench``: its command line, and the report it prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TypeVar

from ackchat.bench.runner import BenchFailedError, progress_stream, run_bench_options
from ackchat.bench.scenarios import FANOUT_RECEIVERS, SCENARIOS, BenchOptions
from ackchat.bench.stats import failed_checks, format_table, summarize, summary_rows
from ackchat.chat.names import room_name
from ackchat.settings import host_name, non_negative_int, port_number, positive_int

T = TypeVar("T")

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


def _seconds(value: object) -> float:
    """A number of seconds, 0 or more."""
    try:
        number = float(str(value))
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0 <= number < float("inf"):
        raise ValueError("must be a number of seconds, 0 or more")
    return number


def _room(value: object) -> str:
    """A room name in its canonical form (``#`` and lower case)."""
    return room_name(str(value))


def _checked(parse: Callable[[object], T]) -> Callable[[str], T]:
    """An argparse type from a settings parser, so both validate values the same way."""

    def check(value: str) -> T:
        try:
            return parse(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return check


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ackchat bench`` to ``parser``."""
    defaults = BenchOptions()
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--scenario", choices=SCENARIOS, default=defaults.scenario, help="what to measure")
    add("--host", type=_checked(host_name), default=defaults.host, help="server address")
    add("--port", type=_checked(port_number), default=defaults.port, help="server port")
    add(
        "--connections",
        "-c",
        type=_checked(positive_int),
        default=None,
        help=(
            f"connections (echo, idle; default {defaults.connections}), parallel clients"
            f" (connect) or receivers (fanout; default {FANOUT_RECEIVERS})"
        ),
    )
    add(
        "--pipeline",
        "-k",
        type=_checked(positive_int),
        default=defaults.pipeline,
        help="requests in flight per connection (fanout: messages in flight)",
    )
    add("--warmup", type=_checked(_seconds), default=defaults.warmup, help="seconds unmeasured")
    add(
        "--duration",
        type=_checked(_seconds),
        default=defaults.duration,
        help="seconds measured (idle: seconds to hold the clients before reading memory)",
    )
    add(
        "--requests",
        type=_checked(non_negative_int),
        default=defaults.requests,
        help=(
            "stop the window after this many replies or cycles, or (fanout) messages sent"
            " (0: after --duration)"
        ),
    )
    add(
        "--workers",
        type=_checked(positive_int),
        default=defaults.workers,
        help="load generator processes for echo, connect and fanout; connections are split",
    )
    add(
        "--line-protocol",
        action="store_true",
        help="the server sends no greeting (a plain line echo server, redis-server)",
    )
    add("--request", default=None, help="send this line every time instead of varied messages")
    add(
        "--expect",
        default=None,
        help="a reply is correct if it ends with this (default: exactly the request + ' ACK')",
    )
    add("--size", type=_checked(positive_int), default=defaults.size, help="message bytes")
    add("--quit", default=None, help="line-protocol connect: line that makes the server close")
    add("--server-pid", type=_checked(positive_int), default=None, help="read its memory use")
    add(
        "--cache-fill",
        type=_checked(non_negative_int),
        default=defaults.cache_fill,
        help="status: connect/exit cycles that fill the cache first",
    )
    add(
        "--status-clients",
        type=_checked(positive_int),
        default=defaults.status_clients,
        help="status: clients asking 'status all' in a loop",
    )
    add(
        "--status-repeats",
        type=_checked(positive_int),
        default=defaults.status_repeats,
        help="status: timed 'status all' requests on an otherwise idle server",
    )
    add(
        "--rate",
        type=_checked(_seconds),
        default=defaults.rate,
        help="fanout: messages per second at most (0: as fast as --pipeline allows)",
    )
    add("--room", type=_checked(_room), default=defaults.room, help="fanout: the room")
    add("--json", action="store_true", help="print the results as JSON")


def options_from(arguments: argparse.Namespace) -> BenchOptions:
    """The options of a run from parsed arguments."""
    connections = arguments.connections
    if connections is None:
        fanout = arguments.scenario == "fanout"
        connections = FANOUT_RECEIVERS if fanout else BenchOptions().connections
    return BenchOptions(
        scenario=arguments.scenario,
        host=arguments.host,
        port=arguments.port,
        connections=connections,
        pipeline=arguments.pipeline,
        warmup=arguments.warmup,
        duration=arguments.duration,
        requests=arguments.requests,
        workers=arguments.workers,
        line_protocol=arguments.line_protocol,
        request=arguments.request,
        expect=arguments.expect,
        size=arguments.size,
        quit=arguments.quit,
        server_pid=arguments.server_pid,
        cache_fill=arguments.cache_fill,
        status_clients=arguments.status_clients,
        status_repeats=arguments.status_repeats,
        rate=arguments.rate,
        room=arguments.room,
    )


def run_bench(arguments: argparse.Namespace) -> int:
    """Run ``ackchat bench``; exit code 1 if any reply was wrong or the run failed."""
    options = options_from(arguments)
    try:
        measurement = run_bench_options(options, progress_stream())
    except (BenchFailedError, ValueError) as error:
        print(f"ackchat bench: {error}", file=sys.stderr)
        return EXIT_ERRORS
    summary = summarize(measurement)
    summary["pipeline"] = options.pipeline
    if arguments.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(("figure", "value"), summary_rows(summary)))
    problems = failed_checks(summary)
    for problem in problems:
        print(f"ackchat bench: {problem}", file=sys.stderr)
    return EXIT_ERRORS if measurement.errors or problems else EXIT_OK


def main() -> int:
    """``python -m ackchat.bench``, until ``ackchat bench`` is wired into the main CLI."""
    parser = argparse.ArgumentParser(prog="ackchat bench")
    add_bench_arguments(parser)
    return run_bench(parser.parse_args())
