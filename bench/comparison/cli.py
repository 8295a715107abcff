"""The command line of ``python bench/compare.py``: options, the run, the exit code.

Exit codes: 0 when every measurement was made; 1 when one failed (the rest is still
reported) or the comparison could not go on; 2 for bad options; 130 after Ctrl-C. Each
failure is said in one sentence on stderr.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from ackchat.bench.runner import raise_open_files_limit
from comparison import ROOT, ComparisonError, browser, charts, report
from comparison.analysis import Run
from comparison.machine import describe
from comparison.outputs import Layout, check_document, save
from comparison.plan import FULL, QUICK, choose_scale, chosen, scenario_names, scenarios
from comparison.rounds import run_rounds
from comparison.servers import BEFORE_CHAT, EARLIER, HTTP, REDIS, SHORT_NAMES, lineup
from comparison.worktree import earlier_checkout

DESCRIPTION = """\
Compare ackchat with redis-server (if installed), two bare echo servers, an earlier
ackchat and ackchat with its HTTP side and the dashboard open in headless chromium (if
chromium and Playwright are installed): each server is started in turn, round after
round, and the same scenarios of ackchat's load generator run against each. The report
(median of the rounds, min-max, ackchat's ratios to the others within each round), the
JSON of every round and a chart go to a new folder, bench/runs/<UTC time>/, whose path is
printed at the end; --document writes them to docs/BENCHMARKS.md and bench/results/
instead. --scenarios and --servers make a shorter run of some of it, e.g. issue #13's
check: --quick --scenarios echo,churn --servers ackchat,http."""
INSTALL = "pip install -e '.[bench]'"
LAYOUT = Layout(ROOT)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("a measurement needs more than 0 seconds")
    return value


def names_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list of some of ``choices``."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose among {', '.join(choices)} (comma-separated)"
            )
        return names

    return parse


class Timing(Protocol):
    """What a benchmark's scale says of its rounds and runs."""

    @property
    def rounds(self) -> int: ...
    @property
    def duration(self) -> float: ...
    @property
    def warmup(self) -> float: ...


def add_timing_options(
    parser: argparse.ArgumentParser, full: Timing, quick: Timing, quick_is: str, per: str
) -> None:
    """``--quick``, ``--rounds``, ``--duration`` and ``--warmup``, with the defaults of
    ``full`` and ``quick``; ``quick_is`` says what --quick is, ``per`` what a duration is of."""
    parser.add_argument("--quick", action="store_true", help=f"short runs, {quick_is}")
    parser.add_argument(
        "--rounds", type=positive_int, help=f"rounds (default {full.rounds}, quick {quick.rounds})"
    )
    parser.add_argument(
        "--duration",
        type=positive_seconds,
        help=f"seconds measured per {per} (default {full.duration:g}, quick {quick.duration:g})",
    )
    parser.add_argument(
        "--warmup",
        type=seconds,
        help=f"seconds of warm-up per {per} (default {full.warmup:g}, quick {quick.warmup:g})",
    )


def parser() -> argparse.ArgumentParser:
    """The options of ``python bench/compare.py``."""
    parser = argparse.ArgumentParser(
        prog="compare.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_timing_options(parser, FULL, QUICK, "one round (~1 min)", "scenario")
    parser.add_argument(
        "--document",
        action=argparse.BooleanOptionalAction,
        default=False,
        help=(
            "write the tracked docs/BENCHMARKS.md and bench/results/ (only if every"
            " measurement was made) instead of a new folder under bench/runs/"
        ),
    )
    parser.add_argument(
        "--against",
        default=BEFORE_CHAT,
        metavar="COMMIT",
        help=(
            "an earlier ackchat commit to compare the hot paths (echo, churn) with"
            f" (default {BEFORE_CHAT}, the last before chat; 'none' to skip)"
        ),
    )
    parser.add_argument(
        "--scenarios",
        type=names_list(scenario_names(scenarios(QUICK))),
        default=[],
        metavar="LIST",
        help=(
            "run only these scenarios (comma-separated: a group such as echo, churn,"
            " fanout, or one scenario such as 'echo 50/1'); default all"
        ),
    )
    parser.add_argument(
        "--servers",
        type=names_list(list(SHORT_NAMES)),
        default=[],
        metavar="LIST",
        help=f"run only these servers (comma-separated: {', '.join(SHORT_NAMES)}); default all",
    )
    return parser


def warn(sentence: str) -> None:
    """Say ``sentence`` on stderr, as compare.py."""
    print(f"compare.py: {sentence}", file=sys.stderr, flush=True)


def compare(arguments: argparse.Namespace, command: str) -> int:
    """Measure, write the files where they belong, print the report; the exit code."""
    scale = choose_scale(arguments.quick, arguments.rounds, arguments.duration, arguments.warmup)
    wanted = {SHORT_NAMES[name] for name in arguments.servers} or set(SHORT_NAMES.values())
    if arguments.document:
        if not charts.available():
            raise ComparisonError(f"--document needs matplotlib for the chart: {INSTALL}.")
        check_document(LAYOUT)
    elif not charts.available():
        warn(f"matplotlib is not installed, so this run draws no chart ({INSTALL}).")
    redis = shutil.which("redis-server") is not None
    if not redis and REDIS in wanted:
        warn("redis-server is not installed, so it is left out of the comparison.")
    missing = browser.missing() if HTTP in wanted else None
    if missing is not None:
        warn(f"{missing}, so {HTTP} is left out of the comparison.")
    raise_open_files_limit()
    machine = describe()
    if HTTP in wanted and missing is None:
        machine["chromium"] = browser.chromium_version()
    with ExitStack() as stack:
        earlier: Path | None = None
        if arguments.against.lower() != "none" and EARLIER in wanted:
            earlier, commit = stack.enter_context(earlier_checkout(arguments.against))
            machine["earlier ackchat"] = commit
        servers = [
            server
            for server in lineup(earlier, redis, dashboard=missing is None)
            if server.name in wanted
        ]
        plan = chosen(scenarios(scale), arguments.scenarios)
        results, failures = run_rounds(servers, plan, scale.rounds, sys.stderr)
    names = tuple(server.name for server in servers)
    run = Run(command, scale, names, machine, results, tuple(failures))
    tracked = arguments.document and not failures
    folder = save(run, LAYOUT, tracked, datetime.now(UTC))
    print(report.text(run), end="\n\n")
    if tracked:
        print(f"This run's report is in {LAYOUT.document} and {folder}")
    else:
        print(f"This run's report is in {folder}")
    if failures:
        kept = ", so the tracked files were left as they were" if arguments.document else ""
        count = f"{len(failures)} measurement{'s' if len(failures) > 1 else ''}"
        warn(f"{count} failed (listed in the report){kept}.")
        return 1
    return 0


def sentence(error: Exception) -> str:
    """What went wrong, in one sentence without the exception's class."""
    if isinstance(error, ComparisonError):
        return str(error)
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or 'cannot be used'}."
    return f"failed unexpectedly: {str(error).rstrip('.') or 'no details'}."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison as ``python bench/compare.py`` with ``argv``; the exit code."""
    options = parser()
    arguments = options.parse_args(argv)
    if arguments.document and (arguments.scenarios or arguments.servers):
        options.error(
            "--document records the whole comparison: leave out --scenarios and --servers"
        )
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "bench/compare.py", *given])
    try:
        return compare(arguments, command)
    except KeyboardInterrupt:
        warn("interrupted; the servers it started were stopped.")
        return 130
    except Exception as error:
        warn(sentence(error))
        return 1
