"""What a SIGHUP reload applies and reports, without a process or a signal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ackchat.server.reload import plan_reload
from ackchat.settings import Loaded, ServerSettings

FILE = Path("ackchat.toml")
RUNNING = ServerSettings(max_clients=3)


def test_a_live_setting_changes_and_the_report_says_from_what_to_what() -> None:
    outcome = plan_reload(RUNNING, Loaded(replace(RUNNING, max_clients=4), FILE))
    assert outcome.settings.max_clients == 4
    assert outcome.changed == {"max_clients": (3, 4)}
    assert outcome.report == ["reload of ackchat.toml: max_clients 3 -> 4"]


def test_an_unchanged_file_says_nothing_changed() -> None:
    outcome = plan_reload(RUNNING, Loaded(RUNNING, FILE, frozenset({"max_clients"})))
    assert outcome.settings == RUNNING
    assert outcome.report == ["reload of ackchat.toml: nothing changed"]


def test_settings_that_need_a_restart_are_left_and_named() -> None:
    fresh = replace(RUNNING, port=4321, history_limit=5)
    outcome = plan_reload(RUNNING, Loaded(fresh, FILE))
    assert outcome.settings == RUNNING
    assert outcome.report == [
        "reload of ackchat.toml: nothing changed",
        "reload of ackchat.toml: port (1234 -> 4321), history_limit (10000 -> 5) changed"
        " in the file but needs a restart; left as it is",
    ]


def test_a_secret_is_named_but_never_shown() -> None:
    outcome = plan_reload(RUNNING, Loaded(replace(RUNNING, password="hunter2"), FILE))
    assert "password changed in the file but needs a restart" in outcome.report[1]
    assert not any("hunter2" in text for text in outcome.report)


def test_overridden_settings_are_reported_with_what_overrides_them() -> None:
    running = replace(RUNNING, password="s3cret")
    loaded = Loaded(
        running,
        FILE,
        frozenset({"max_clients", "password"}),
        {"max_clients": "--max-clients", "password": "environment variable ACKCHAT_PASSWORD"},
    )
    report = plan_reload(running, loaded).report
    assert report[1:] == [
        "reload of ackchat.toml: max_clients in the file is overridden by --max-clients; left at 3",
        "reload of ackchat.toml: password in the file is overridden by environment variable"
        " ACKCHAT_PASSWORD; left as it is",
    ]


def test_without_a_config_file_there_is_nothing_to_reload() -> None:
    outcome = plan_reload(RUNNING, Loaded(replace(RUNNING, max_clients=9)))
    assert outcome.settings == RUNNING
    assert outcome.report == [
        "reload: there is no config file to reload (the server was started without"
        " --config or ACKCHAT_CONFIG); nothing changed"
    ]


def test_a_reload_is_measured_against_what_runs_not_against_the_start() -> None:
    first = plan_reload(RUNNING, Loaded(replace(RUNNING, max_clients=5), FILE))
    second = plan_reload(first.settings, Loaded(replace(RUNNING, max_clients=5), FILE))
    assert second.report == ["reload of ackchat.toml: nothing changed"]
