"""What a SIGHUP reload applies and reports, without a process or a signal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ackchat.server.reload import LIVE_SETTINGS, SettingChangeError, plan_change, plan_reload
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
    fresh = replace(RUNNING, port=4321, backlog=5)
    outcome = plan_reload(RUNNING, Loaded(fresh, FILE))
    assert outcome.settings == RUNNING
    assert outcome.report == [
        "reload of ackchat.toml: nothing changed",
        "reload of ackchat.toml: port (1234 -> 4321), backlog (1024 -> 5) changed"
        " in the file but needs a restart; left as it is",
    ]


def test_every_live_setting_changes_on_reload() -> None:
    fresh = replace(RUNNING, idle_timeout=60.0, rate_limit=100.0, history_limit=5)
    outcome = plan_reload(RUNNING, Loaded(fresh, FILE))
    assert outcome.settings == fresh
    assert outcome.report == [
        "reload of ackchat.toml: history_limit 10000 -> 5, idle_timeout 0.0 -> 60.0,"
        " rate_limit 200000.0 -> 100.0"
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


def test_a_value_changed_while_running_stays_until_the_file_changes_it() -> None:
    changed = plan_change(RUNNING, {"max_clients": 10}, "admin API").settings
    same_file = plan_reload(changed, Loaded(RUNNING, FILE), previous=RUNNING)
    assert same_file.settings.max_clients == 10
    assert same_file.report == [
        "reload of ackchat.toml: nothing changed",
        "reload of ackchat.toml: max_clients stays at 10, as changed while running"
        " (not changed in the file)",
    ]
    edited = plan_reload(changed, Loaded(replace(RUNNING, max_clients=4), FILE), previous=RUNNING)
    assert edited.settings.max_clients == 4
    assert edited.report == ["reload of ackchat.toml: max_clients 10 -> 4"]


def test_a_change_names_what_changed_from_what_to_what() -> None:
    outcome = plan_change(RUNNING, {"max_clients": 5, "idle_timeout": 30}, "admin API (::1)")
    assert (outcome.settings.max_clients, outcome.settings.idle_timeout) == (5, 30.0)
    assert outcome.changed == {"max_clients": (3, 5), "idle_timeout": (0.0, 30.0)}
    assert outcome.report == ["admin API (::1): max_clients 3 -> 5, idle_timeout 0.0 -> 30.0"]
    again = plan_change(outcome.settings, {"max_clients": 5}, "admin API (::1)")
    assert again.changed == {}
    assert again.report == ["admin API (::1): nothing changed"]


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"max_clients": -1}, "max_clients", "max_clients must be a positive integer, got -1"),
        ({"max_clients": 0}, "max_clients", "max_clients must be a positive integer, got 0"),
        ({"max_clients": "5"}, "max_clients", "max_clients must be an integer, got '5'"),
        ({"max_clients": 2.5}, "max_clients", "max_clients must be an integer, got 2.5"),
        ({"max_clients": True}, "max_clients", "max_clients must be an integer, got True"),
        ({"idle_timeout": -3}, "idle_timeout", "idle_timeout must be a number, 0 or more, got -3"),
        ({"idle_timeout": None}, "idle_timeout", "idle_timeout must be a number, got None"),
        (
            {"max_client": 4},
            "max_client",
            "unknown setting 'max_client'; did you mean 'max_clients'?",
        ),
        ({"port": 4}, "port", "port cannot change while the server runs (it needs a restart);"),
        ({"max_clients": 4, "history_limit": -1}, "history_limit", "history_limit must be an"),
    ],
)
def test_a_bad_change_names_its_field_and_changes_nothing(
    values: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(SettingChangeError) as refused:
        plan_change(RUNNING, values, "admin API")
    assert refused.value.field == field
    assert str(refused.value).startswith(message)


def test_every_live_setting_is_a_setting_with_a_number() -> None:
    for name in LIVE_SETTINGS:
        assert isinstance(getattr(RUNNING, name), int | float), name
