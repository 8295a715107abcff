"""Run a scenario in worker processes under uvloop and merge what they measured.

Each worker is one process with its own event loop and its share of the connections;
the workers set up their connections, meet at a barrier, then load the server over the
same window. The parent only waits, draws a progress bar, and merges the results. A run
that cannot be made raises :class:`BenchFailedError`: one sentence and an exit code.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import TextIO, TypeAlias

from ackchat.bench.client import BenchError, ServerFullError
from ackchat.bench.scenarios import (
    SETUP_TIMEOUT,
    hold_all,
    overdue,
    read_rss_kb,
    release_all,
    run_scenario,
    usage_problem,
)
from ackchat.bench.stats import Measurement, merge_measurements
from ackchat.client.errors import EXIT_ERROR, EXIT_SERVER_FULL, EXIT_USAGE
from ackchat.settings import BenchSettings

# Scenarios whose connections can be split among workers; the others run in one process.
SPLITTABLE = ("echo", "connect", "fanout")
PROGRESS_INTERVAL = 0.25
BAR_WIDTH = 30
# Files a load generator process keeps open besides its connections (loop, pipes, ...).
SPARE_FILES = 64


def raise_open_files_limit() -> int:
    """Raise this process's open-files limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed, otherwise asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


@dataclass(frozen=True)
class WorkerFailure:
    """Why a worker ended without a measurement, sent to the parent to report."""

    message: str
    exit_code: int = EXIT_ERROR
    # The server said it is full; ``admitted`` of this worker's connections were open then.
    full: bool = False
    admitted: int = 0
    # Another worker failed first (the barrier broke): that one's failure is the news.
    secondary: bool = False


def worker_failure(error: Exception) -> WorkerFailure:
    """What to tell the parent about ``error``, which ended a worker (or the capacity check)."""
    if isinstance(error, ServerFullError):
        return WorkerFailure(str(error), error.exit_code, full=True, admitted=error.admitted)
    if isinstance(error, BenchError):
        return WorkerFailure(str(error), error.exit_code)
    if isinstance(error, threading.BrokenBarrierError):
        return WorkerFailure("another worker failed", secondary=True)
    return WorkerFailure(f"the load generator failed unexpectedly: {error or 'no details'}.")


# What a worker sends back: its measurement, or why it has none.
Results: TypeAlias = "Queue[tuple[Measurement | None, WorkerFailure | None]]"


def _worker(options: BenchSettings, barrier: Barrier, results: Results) -> None:
    """A worker process: run its share of the scenario and send back what it measured."""
    raise_open_files_limit()

    def sync() -> None:
        barrier.wait(SETUP_TIMEOUT)

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            measurement = runner.run(run_scenario(options, sync))
    except KeyboardInterrupt:
        return  # Ctrl-C reached the whole process group: the parent reports it.
    except Exception as error:
        barrier.abort()
        results.put((None, worker_failure(error)))
        return
    results.put((measurement, None))


def worker_count(options: BenchSettings) -> int:
    """How many processes the scenario runs in."""
    if options.scenario not in SPLITTABLE:
        return 1
    return max(1, min(options.workers, options.connections))


class BenchFailedError(BenchError):
    """The run could not be made: what the command reports, with the exit code to use."""


def full_message(options: BenchSettings, admitted: int) -> str:
    """What to say when the server was full: what it admitted, and what to change."""
    need = options.at_once
    parts = {
        "fanout": f" ({options.connections} receivers and the sender)",
        "status": f" ({options.connections} echo clients and {options.status_clients}"
        " --status-clients)",
    }.get(options.scenario, "")
    fewer = admitted - (need - options.connections)
    lower = f"use --connections {fewer} or fewer, or " if fewer >= 1 else ""
    server = (
        "redis-server with --maxclients"
        if options.redis_pubsub
        else "the server with --max-clients"
    )
    return (
        f"the server is full: it admitted {admitted} of the {need} connections this run"
        f" holds at once{parts}; {lower}start {server} {need} or more."
    )


def reported(failures: Sequence[WorkerFailure], options: BenchSettings) -> BenchFailedError:
    """The one error to report for the workers' failures: the first that is not an echo."""
    first = next((failure for failure in failures if not failure.secondary), failures[0])
    if first.full:
        admitted = sum(failure.admitted for failure in failures)
        return BenchFailedError(full_message(options, admitted), EXIT_SERVER_FULL)
    return BenchFailedError(first.message, first.exit_code)


def check_capacity(options: BenchSettings) -> None:
    """Hold the run's connections from this one process, and let them go.

    Workers open their shares at their own pace: when a full server turns one away, the
    others' count is not a count of what the server holds at once. This one is.
    """

    async def hold_and_release() -> None:
        await release_all(options, await hold_all(options, options.at_once))

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(hold_and_release())
    except BenchError as error:
        raise reported([worker_failure(error)], options) from None


def check_options(options: BenchSettings, open_files: int) -> None:
    """Raise a usage error (exit code 2) for options that cannot make a run."""
    problem = usage_problem(options)
    busiest = options.share(0).at_once
    if problem is None and busiest + SPARE_FILES > open_files:
        more = " or more --workers" if options.scenario in SPLITTABLE else ""
        problem = (
            f"{busiest} connections in one process need more open files than this system"
            f" allows ({open_files}, see ulimit -n); use fewer --connections{more}."
        )
    if problem is None and options.server_pid:
        try:
            read_rss_kb(options.server_pid)
        except BenchError as error:
            problem = str(error)
    if problem is not None:
        raise BenchFailedError(problem, EXIT_USAGE)


def run_bench_options(options: BenchSettings, progress: TextIO | None = None) -> Measurement:
    """Run ``options`` in worker processes; draws a progress bar on ``progress`` if given."""
    open_files = raise_open_files_limit()
    workers = worker_count(options)
    options = replace(options, workers=workers)
    check_options(options, open_files)
    if workers > 1 and options.greeting:
        check_capacity(options)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers)
    results: Results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(options.share(n), barrier, results), daemon=True)
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    parts: list[Measurement] = []
    failures: list[WorkerFailure] = []
    started = time.monotonic()
    bound = options.warmup + options.duration + 2 * SETUP_TIMEOUT
    expected = options.warmup + options.duration
    try:
        while len(parts) + len(failures) < workers:
            if time.monotonic() > started + bound:
                raise BenchFailedError(overdue(bound))
            try:
                measurement, failure = results.get(timeout=PROGRESS_INTERVAL)
            except queue.Empty:
                if not any(process.is_alive() for process in processes):
                    raise BenchFailedError(
                        "a load generator process ended without a result (killed, or out of"
                        " memory?)."
                    ) from None
                if progress is not None:
                    draw_progress(progress, time.monotonic() - started, expected)
                continue
            if failure is not None:
                failures.append(failure)
            elif measurement is not None:
                parts.append(measurement)
    except BaseException:
        for process in processes:
            process.kill()
        raise
    finally:
        if progress is not None:
            progress.write("\r" + " " * (BAR_WIDTH + 40) + "\r")
            progress.flush()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    if failures:
        raise reported(failures, options)
    return merge_measurements(parts)


def draw_progress(stream: TextIO, elapsed: float, expected: float) -> None:
    """A one-line progress bar for a run expected to take ``expected`` seconds."""
    done = min(1.0, elapsed / expected) if expected > 0 else 1.0
    filled = int(done * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    stream.write(f"\r[{bar}] {elapsed:5.1f}/{expected:.1f} s")
    stream.flush()


def progress_stream() -> TextIO | None:
    """stderr when it is a terminal, else None (no progress bar in logs and pipes)."""
    return sys.stderr if sys.stderr.isatty() else None
