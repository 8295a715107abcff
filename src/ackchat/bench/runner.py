"""Run a scenario in worker processes under uvloop and merge what they measured.

Each worker is one process with its own event loop and its share of the connections;
the workers set up their connections, meet at a barrier, then load the server over the
same window. The parent only waits, draws a progress bar, and merges the results.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.synchronize import Barrier
from typing import TextIO

from ackchat.bench.scenarios import SETUP_TIMEOUT, BenchOptions, run_scenario
from ackchat.bench.stats import Measurement, merge_measurements

# Scenarios whose connections can be split among workers; the others run in one process.
SPLITTABLE = ("echo", "connect", "fanout")
PROGRESS_INTERVAL = 0.25
BAR_WIDTH = 30


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


def _worker(
    options: BenchOptions,
    barrier: Barrier,
    results: multiprocessing.Queue[tuple[Measurement | None, str]],
) -> None:
    """A worker process: run its share of the scenario and send back what it measured."""
    raise_open_files_limit()

    def sync() -> None:
        barrier.wait(SETUP_TIMEOUT)

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            measurement = runner.run(run_scenario(options, sync))
    except Exception as error:
        barrier.abort()
        results.put((None, f"{type(error).__name__}: {error}"))
        return
    results.put((measurement, ""))


def worker_count(options: BenchOptions) -> int:
    """How many processes the scenario runs in."""
    if options.scenario not in SPLITTABLE:
        return 1
    return max(1, min(options.workers, options.connections))


class BenchFailedError(Exception):
    """A worker could not run its part of the scenario; the message says why."""


def run_bench_options(options: BenchOptions, progress: TextIO | None = None) -> Measurement:
    """Run ``options`` in worker processes; draws a progress bar on ``progress`` if given."""
    raise_open_files_limit()
    workers = worker_count(options)
    options = replace(options, workers=workers)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers)
    results: multiprocessing.Queue[tuple[Measurement | None, str]] = context.Queue()
    processes = [
        context.Process(target=_worker, args=(options.share(n), barrier, results), daemon=True)
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    parts: list[Measurement] = []
    failures: list[str] = []
    started = time.monotonic()
    deadline = started + options.warmup + options.duration + 2 * SETUP_TIMEOUT
    expected = options.warmup + options.duration
    try:
        while len(parts) + len(failures) < workers:
            if time.monotonic() > deadline:
                raise BenchFailedError("the workers did not finish in time")
            try:
                measurement, failure = results.get(timeout=PROGRESS_INTERVAL)
            except queue.Empty:
                if not any(process.is_alive() for process in processes):
                    raise BenchFailedError("a worker died without a result") from None
                if progress is not None:
                    draw_progress(progress, time.monotonic() - started, expected)
                continue
            if measurement is None:
                failures.append(failure)
            else:
                parts.append(measurement)
    finally:
        if progress is not None:
            progress.write("\r" + " " * (BAR_WIDTH + 40) + "\r")
            progress.flush()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    if failures:
        raise BenchFailedError(failures[0])
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
