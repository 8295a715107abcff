"""The dashboard open in headless chromium beside a server, for ``ackchat http`` (issue #13).

A server with ``dashboard`` is started with ``--http 127.0.0.1:<free port>``, and a
helper process (this module run as ``python -m comparison.browser URL``) opens the
dashboard there with Playwright's Python API in Debian's chromium (never a browser
Playwright downloads). The helper says when the page shows it is live (connected to the
feed, with an update received), keeps it open until its stdin closes, then says whether
it was still live, how often it lost its feed meanwhile and how many updates it saw.
The browser is its own process tree: its CPU is never counted as the server's, and is
measured from /proc around each scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from comparison import ROOT, ComparisonError
from comparison.analysis import BROWSER_CPU
from comparison.processes import free_port, last_line, running, stop
from comparison.servers import Server, with_http

CHROMIUM = Path("/usr/bin/chromium")
# Seconds for chromium to start and the page to show it is live, and to say goodbye.
LIVE_WITHIN = 30.0
CLOSE_WITHIN = 10.0
# Counts the page's updates (the dashboard rewrites #updated on each one) and the times
# its state (#live) showed anything but "live" (the feed broke, or the server said why).
WATCH = """() => {
  const watched = {childList: true, characterData: true, subtree: true};
  const live = document.getElementById("live");
  window.ackchatUpdates = 0;
  window.ackchatDrops = 0;
  new MutationObserver(() => { window.ackchatUpdates += 1; }).observe(
    document.getElementById("updated"), watched);
  new MutationObserver(() => {
    if (live.textContent !== "live") window.ackchatDrops += 1;
  }).observe(live, watched);
}"""
STATE = """() => [
  document.getElementById("live").textContent, window.ackchatUpdates, window.ackchatDrops]"""


def missing() -> str | None:
    """Why the dashboard cannot be opened here (one clause), or None if it can."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright's Python package is not installed"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def chromium_version() -> str:
    """chromium's version as it reports it, or ``?``."""
    output = subprocess.run(
        [str(CHROMIUM), "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    return output[1] if len(output) > 1 else "?"


def stat_times(stat: str) -> tuple[int, int]:
    """From a /proc/<pid>/stat line: the parent's pid, and the CPU clock ticks used by the
    process and by its children it has waited for (utime + stime + cutime + cstime)."""
    # The command name (field 2) is in brackets and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), sum(int(field) for field in fields[11:15])


def process_tree(root: int) -> dict[int, int]:
    """Process ``root`` and all its descendants alive now: pid -> CPU ticks used so far."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # It exited meanwhile.
        pid = int(entry.name)
        parents[pid], ticks[pid] = stat_times(stat)
    tree = {root}
    grown = True
    while grown:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grown = bool(found)
    return {pid: ticks.get(pid, 0) for pid in tree}


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by process ``root`` and all its descendants alive now."""
    return sum(process_tree(root).values()) / os.sysconf("SC_CLK_TCK")


def signal_tree(root: int, number: signal.Signals) -> None:
    """Send signal ``number`` to process ``root`` and all its descendants alive now."""
    for pid in process_tree(root):
        with contextlib.suppress(ProcessLookupError):  # It exited meanwhile.
            os.kill(pid, number)


def read_report(
    process: subprocess.Popen[bytes], within: float, log: IO[bytes]
) -> dict[str, object]:
    """The helper's next report line (JSON), or an error if it exits or is too slow."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], within)
    if not ready:
        return {"error": f"the browser said nothing within {within:g} s"}
    line = process.stdout.readline()
    if not line:
        process.wait(CLOSE_WITHIN)
        said = last_line(log) or "no details"
        return {"error": f"the browser exited with code {process.returncode}: {said}"}
    try:
        report: dict[str, object] = json.loads(line)
    except ValueError:
        return {"error": f"the browser said {line.decode(errors='replace').strip()!r}"}
    return report


@dataclass(frozen=True)
class Dashboard:
    """The dashboard kept open by the helper process ``process``."""

    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """CPU seconds the browser (chromium and Playwright's driver) has used so far."""
        return tree_cpu_seconds(self.process.pid)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The browser stopped (SIGSTOP) meanwhile, so that it takes no CPU from another
        server's measurement; it goes on (SIGCONT) on the way out, and catches up with
        what its feed sent meanwhile."""
        signal_tree(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            signal_tree(self.process.pid, signal.SIGCONT)


@contextmanager
def dashboard_open(name: str, http_port: int) -> Iterator[Dashboard]:
    """Open the dashboard on ``http_port`` and yield once it is live; on the way out, raise
    if it was no longer live or saw no update meanwhile. ``name`` is the server's."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "bench")])
    helper = [sys.executable, "-m", "comparison.browser", f"http://127.0.0.1:{http_port}/"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            helper, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=environment
        )
        assert process.stdin is not None
        try:
            ready = read_report(process, LIVE_WITHIN + CLOSE_WITHIN, log)
            if "error" in ready:
                raise ComparisonError(f"{name}: {ready['error']}.")
            yield Dashboard(process)
            process.stdin.close()
            ended = read_report(process, CLOSE_WITHIN, log)
        finally:
            # Its stdin closed, the helper closes the browser and exits.
            process.stdin.close()
            try:
                process.wait(CLOSE_WITHIN)
            except subprocess.TimeoutExpired:
                stop(process)
    if "error" in ended:
        raise ComparisonError(f"{name}: {ended['error']}.")
    if ended.get("live") != "live" or not ended.get("updates") or ended.get("drops"):
        raise ComparisonError(
            f"{name}: the dashboard was not live throughout: it lost its feed"
            f" {ended.get('drops')} times and showed {ended.get('live')!r} at the end, after"
            f" {ended.get('updates')} updates."
        )


@dataclass(frozen=True)
class Served:
    """A running server: its port, its pid, and the dashboard open on it, if any."""

    port: int
    pid: int
    dashboard: Dashboard | None = None

    @contextmanager
    def during(self) -> Iterator[dict[str, float]]:
        """Figures of what runs beside the server during one measurement, filled in on
        the way out: with the dashboard open, the browser's CPU in % of a core."""
        figures: dict[str, float] = {}
        if self.dashboard is None:
            yield figures
            return
        cpu, started = self.dashboard.cpu_seconds(), time.monotonic()
        yield figures
        elapsed = time.monotonic() - started
        if elapsed > 0:
            figures[BROWSER_CPU] = 100 * (self.dashboard.cpu_seconds() - cpu) / elapsed

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The dashboard open on it, if any, paused meanwhile (Dashboard.paused)."""
        if self.dashboard is None:
            yield
            return
        with self.dashboard.paused():
            yield


@contextmanager
def serving(server: Server) -> Iterator[Served]:
    """Start ``server`` (with ``dashboard``: its HTTP side too, and the dashboard open and
    live on it) on a free port; yields it; stops both on the way out."""
    if not server.dashboard:
        with running(server) as (port, pid):
            yield Served(port, pid)
        return
    http_port = free_port()
    started = replace(server, command=with_http(server.command, http_port))
    with running(started) as (port, pid), dashboard_open(server.name, http_port) as dashboard:
        yield Served(port, pid, dashboard)


# The helper process: python -m comparison.browser URL


def say(report: dict[str, object]) -> None:
    """One report line to the parent."""
    print(json.dumps(report), flush=True)


async def keep_open(url: str) -> int:
    """Open ``url`` in headless chromium, say when it is live, keep it open until stdin
    closes, then say its state; the exit code."""
    from playwright.async_api import Error, async_playwright, expect

    deadline = time.monotonic() + LIVE_WITHIN
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except Error as error:
            say({"error": f"chromium did not start: {error.message.splitlines()[0]}"})
            return 1
        try:
            page = await browser.new_page()
            while True:
                try:
                    await page.goto(url)
                    break
                except Error:
                    if time.monotonic() > deadline:
                        say({"error": f"the dashboard at {url} could not be loaded"})
                        return 1
                    await asyncio.sleep(0.1)
            await page.evaluate(WATCH)
            left = max(deadline - time.monotonic(), 1.0) * 1000
            try:
                await expect(page.locator("#live")).to_have_text("live", timeout=left)
                await page.wait_for_function("() => window.ackchatUpdates > 0", timeout=left)
            except (AssertionError, Error):
                shown = await page.locator("#live").text_content()
                say({"error": f"the dashboard did not become live (it showed {shown!r})"})
                return 1
            # From now on, any state but "live" is a drop.
            await page.evaluate("() => { window.ackchatDrops = 0; }")
            say({"live": "live"})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
            live, updates, drops = await page.evaluate(STATE)
            say({"live": live, "updates": updates, "drops": drops})
        finally:
            await browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(keep_open(sys.argv[1])))
