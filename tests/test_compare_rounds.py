"""compare.py's rounds and processes: options per server, failures as sentences, servers stopped."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from ackchat.bench.stats import Measurement
from ackchat.http.live import STEADY_AFTER
from comparison.analysis import BROWSER_CPU
from comparison.browser import process_tree, serving
from comparison.plan import QUICK, WARM_UP, scenarios
from comparison.processes import running
from comparison.rounds import (
    TURN_WARMUP,
    TURNS,
    averaged,
    in_turns,
    merge_options,
    run_rounds,
    wrong_replies,
)
from comparison.servers import ACKCHAT, HTTP, REDIS, UVLOOP, Server, lineup
from lineclient import WAIT


def test_each_server_is_talked_to_its_own_way() -> None:
    redis = next(server for server in lineup(None, redis=True) if server.name == REDIS)
    churn = next(scenario for scenario in scenarios(QUICK) if scenario.key == "churn 50")
    options = merge_options(redis.load, churn.options, port=4321, pid=99)
    assert (options.scenario, options.connections) == ("connect", 50)
    assert (options.port, options.server_pid) == (4321, 99)
    assert (options.line_protocol, options.request, options.expect, options.quit) == (
        True,
        "PING",
        "+PONG",
        "QUIT",
    )


def test_wrong_replies_make_a_measurement_no_result() -> None:
    assert wrong_replies(Measurement("echo", 3, replies=10)) is None
    wrong = Measurement("echo", 3, errors=1200, error_samples=["expected b'a ACK', got b'b'"])
    assert wrong_replies(wrong) == "1,200 wrong replies, the first: expected b'a ACK', got b'b'"


def test_a_server_that_exits_at_once_is_one_failure_of_each_round() -> None:
    command = [sys.executable, "-c", "raise SystemExit('unknown option --port.')"]
    broken = Server("broken", lambda port: command)
    log = io.StringIO()
    results, failures = run_rounds([broken], scenarios(QUICK), 2, log)
    assert results == {}
    assert len(failures) == 2
    for number, failure in enumerate(failures, 1):
        assert re.fullmatch(
            rf"round {number}: broken exited with code 1 before listening on port \d+:"
            r" unknown option --port\.",
            failure,
        ), failure
    assert log.getvalue().splitlines()[0] == "round 1 of 2"


def test_a_server_runs_on_a_free_port_and_is_stopped_on_the_way_out() -> None:
    echo = next(server for server in lineup(None, redis=False) if server.name == UVLOOP)
    with running(echo) as (port, pid):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(b"hello\n")
            assert connection.makefile("rb").readline() == b"hello ACK\n"
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_ackchat_http_has_the_dashboard_open_and_live_while_it_is_measured() -> None:
    http = next(server for server in lineup(None, False, dashboard=True) if server.name == HTTP)
    with serving(http) as served:
        assert served.dashboard is not None
        address = ("127.0.0.1", served.port)
        with served.during() as beside, socket.create_connection(address, timeout=5) as connection:
            assert connection.makefile("rb").readline().startswith(b"Welcome")
        assert beside[BROWSER_CPU] >= 0
    # Its stdin closed, the helper found the page still live and closed the browser.
    assert served.dashboard.process.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(served.pid, 0)


def test_runs_taken_in_turns_are_averaged_into_one() -> None:
    first = {"rate": 100.0, "replies": 300, "saturated": False, "round": 2, "scenario": "x"}
    second = {"rate": 200.0, "replies": 500, "saturated": True, "round": 2, "scenario": "x"}
    assert averaged([first, second]) == {
        "rate": 150.0,
        "replies": 400.0,
        "saturated": True,
        "round": 2,
        "scenario": "x",
    }


def states(root: int) -> set[str]:
    """The states (/proc/PID/stat) of process ``root`` and its descendants."""
    found = set()
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        found.add(stat.rsplit(")", 1)[1].split()[0])
    return found


def polled(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` every 10 ms until it holds or the suite's bound passes; whether
    it held."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def states_once(root: int, wanted: Callable[[set[str]], bool]) -> set[str]:
    """The states of ``root``'s processes once ``wanted`` holds of them, or as they are
    after the suite's bound: a signal takes effect when its process next runs."""
    found = states(root)

    def seen() -> bool:
        nonlocal found
        found = states(root)
        return wanted(found)

    polled(seen)
    return found


def test_ackchat_and_ackchat_http_take_the_hot_scenarios_in_turns() -> None:
    servers = [
        server for server in lineup(None, False, dashboard=True) if server.name in (ACKCHAT, HTTP)
    ]
    assert [server.name for server in servers] == [ACKCHAT, HTTP]
    short = {WARM_UP, "echo 3/1", "cold"}
    plan = [
        replace(scenario, options=replace(scenario.options, warmup=0.0, duration=0.3))
        for scenario in scenarios(QUICK)
        if scenario.key in short
    ]
    log = io.StringIO()
    results, failures = run_rounds(servers, plan, 1, log)
    assert failures == []
    runs = [line.strip() for line in log.getvalue().splitlines()[1:]]
    # ackchat's cold start alone, on its own server first; then both, side by side.
    assert runs == [
        f"{ACKCHAT}: cold",
        f"{ACKCHAT}: {WARM_UP}",
        f"{HTTP}: {WARM_UP}",
        *(f"{name}: echo 3/1" for name in TURNS),
    ]
    assert set(results[ACKCHAT]) == {"cold", "echo 3/1"}
    (plain,) = results[ACKCHAT]["echo 3/1"]
    (http,) = results[HTTP]["echo 3/1"]
    assert (plain["round"], http["round"]) == (1, 1)
    assert BROWSER_CPU in http
    assert BROWSER_CPU not in plain


def browser_helper() -> int:
    """The pid of the running dashboard helper (python -m comparison.browser)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # It exited meanwhile.
            if b"comparison.browser" in command:
                return int(entry.name)
    raise LookupError("no dashboard helper is running")


def test_a_round_whose_dashboard_dies_keeps_no_figures_of_its_turns() -> None:
    servers = [
        server for server in lineup(None, False, dashboard=True) if server.name in (ACKCHAT, HTTP)
    ]
    plan = [
        replace(scenario, options=replace(scenario.options, warmup=0.0, duration=1.0))
        for scenario in scenarios(QUICK)
        if scenario.key in (WARM_UP, "echo 3/1")
    ]
    log = io.StringIO()
    killed = threading.Event()

    def kill_the_browser_during_the_first_http_turn() -> None:
        if not polled(lambda: f"{HTTP}: echo 3/1" in log.getvalue()):
            return
        helper = browser_helper()
        for pid in set(process_tree(helper)) - {helper}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_the_browser_during_the_first_http_turn)
    killer.start()
    results, failures = run_rounds(servers, plan, 1, log)
    killer.join(WAIT)
    assert killed.is_set(), "the first http turn did not start"
    assert len(failures) == 1, failures
    assert failures[0].startswith(f"round 1: {HTTP}: the browser exited with code"), failures
    # Every turn ran, but none of the round's side-by-side figures is kept.
    assert [line.strip() for line in log.getvalue().splitlines()].count(f"{HTTP}: echo 3/1") == 2
    assert "echo 3/1" not in results.get(ACKCHAT, {})
    assert "echo 3/1" not in results.get(HTTP, {})


def test_a_turn_warms_up_past_the_feeds_first_second_of_a_change() -> None:
    # The feed pushes at every look for its first STEADY_AFTER seconds of a change.
    assert TURN_WARMUP > STEADY_AFTER
    for scenario in scenarios(QUICK):
        assert in_turns(scenario).options.warmup == max(scenario.options.warmup, TURN_WARMUP)
        assert replace(in_turns(scenario).options, warmup=0) == replace(scenario.options, warmup=0)
    # A longer warm-up is kept.
    longer = [
        scenario
        for scenario in scenarios(replace(QUICK, warmup=TURN_WARMUP + 1))
        if scenario.options.warmup > TURN_WARMUP
    ]
    assert longer
    assert [in_turns(scenario) for scenario in longer] == longer


def test_a_paused_dashboard_is_stopped_and_goes_on_after() -> None:
    http = next(server for server in lineup(None, False, dashboard=True) if server.name == HTTP)
    with serving(http) as served:
        assert served.dashboard is not None
        root = served.dashboard.process.pid
        with served.paused():
            assert states_once(root, lambda found: found == {"T"}) == {"T"}
        assert "T" not in states_once(root, lambda found: "T" not in found)
    # The helper found the page live at the end, its feed never lost.
    assert served.dashboard.process.returncode == 0
