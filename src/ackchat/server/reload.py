"""What a SIGHUP or the admin API changes: new values held against the running settings.

Pure: each planner takes the running settings and what should change, and returns the
settings to run with and the log lines that say what happened; the server applies
them in one place (``ChatServer.reconfigure``). Only the settings in
:data:`LIVE_SETTINGS` change while the server runs.

On SIGHUP the config file is read again: a live setting the file changed since it was
last read takes the file's value; one the file did not change keeps what it runs with,
so a value set through the admin API stays until the file changes it; any other
setting that changed is told that it needs a restart; and a setting a flag or
``ACKCHAT_*`` variable gives stays as given. Through the admin API (``PATCH
/api/config``) only live settings may be named, each with a value of its type that its
parser accepts; anything else is refused with the name of the field at fault.

In cluster mode every live setting is the cluster's: a change on one node reaches every
node (``ChatServer.reconfigure`` hands it to the backend), and a node that joins a
running cluster runs with the cluster's values rather than its own. A later SIGHUP on
any node then changes only what its file changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from difflib import get_close_matches
from typing import Any

from ackchat.errors import AckchatError
from ackchat.settings import Loaded, ServerSettings, SettingsError, settings_of

# The settings that change while the server runs (SIGHUP, PATCH /api/config).
LIVE_SETTINGS = (
    "max_clients",
    "idle_timeout",
    "rate_limit",
    "rate_burst",
    "rate_strikes",
    "history_limit",
    "status_recent",
    "room_history",
    "direct_history",
)
# The live settings that the backend does not enforce itself but shares with every
# server of the service (max_clients and the history sizes it has operations of its own).
SHARED_SETTINGS = ("idle_timeout", "rate_limit", "rate_burst", "rate_strikes", "status_recent")
# Settings whose values never reach a log line.
_SECRET = frozenset(setting.name for setting in fields(ServerSettings) if not setting.repr)
_SETTINGS = {setting.name: setting for setting in settings_of(ServerSettings)}


class SettingChangeError(AckchatError):
    """A change that cannot be made; ``field`` names the setting at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Reload:
    """The outcome of a reload or a change: the settings to run with and what to log."""

    settings: ServerSettings
    changed: dict[str, tuple[object, object]]
    report: list[str]


def live_values(settings: ServerSettings) -> dict[str, object]:
    """The live settings' values, by name."""
    return {name: getattr(settings, name) for name in LIVE_SETTINGS}


def plan_reload(
    running: ServerSettings,
    loaded: Loaded[ServerSettings],
    previous: ServerSettings | None = None,
) -> Reload:
    """Apply what ``loaded`` changed in the live settings since ``previous`` (the settings
    as last loaded; ``running`` when nothing changed them since) to ``running``; say what
    changed, what needs a restart and what was left."""
    if loaded.path is None:
        return Reload(
            running,
            {},
            [
                "reload: there is no config file to reload (the server was started without"
                " --config or ACKCHAT_CONFIG); nothing changed"
            ],
        )
    fresh = loaded.settings
    before = previous or running
    where = f"reload of {loaded.path}"
    changed: dict[str, tuple[object, object]] = {}
    kept: list[str] = []
    needs_restart: list[str] = []
    for setting in fields(ServerSettings):
        name = setting.name
        old, new = getattr(running, name), getattr(fresh, name)
        if name in LIVE_SETTINGS:
            if new == getattr(before, name):
                if new != old:
                    kept.append(f"{name} stays at {old}")
            elif new != old:
                changed[name] = (old, new)
        elif old != new:
            needs_restart.append(f"{name} ({old!r} -> {new!r})" if setting.repr else name)
    report = [f"{where}: {_changes(changed)}"]
    if kept:
        report.append(
            f"{where}: {', '.join(kept)}, as changed while running (not changed in the file)"
        )
    if needs_restart:
        report.append(
            f"{where}: {', '.join(needs_restart)} changed in the file but needs a restart;"
            " left as it is"
        )
    for name, source in sorted(loaded.overridden.items()):
        left = "as it is" if name in _SECRET else f"at {getattr(running, name)!r}"
        report.append(f"{where}: {name} in the file is overridden by {source}; left {left}")
    live: dict[str, Any] = {name: new for name, (_, new) in changed.items()}
    return Reload(replace(running, **live), changed, report)


def plan_change(running: ServerSettings, values: Mapping[str, object], who: str) -> Reload:
    """Apply ``values`` (JSON values by setting name) to ``running``, as ``who`` asked.

    Raises :class:`SettingChangeError` for the first name that is not a live setting, or
    whose value has the wrong type or is out of range: nothing changes then.
    """
    parsed: dict[str, Any] = {}
    for name, value in values.items():
        parsed[name] = _parse_live(name, value)
    try:
        settings = replace(running, **parsed)
    except SettingsError as error:
        raise SettingChangeError(next(iter(parsed)), str(error)) from None
    changed = {
        name: (getattr(running, name), new)
        for name, new in parsed.items()
        if getattr(running, name) != new
    }
    return Reload(settings, changed, [f"{who}: {_changes(changed)}"])


def _parse_live(name: str, value: object) -> object:
    """The value of live setting ``name`` from a JSON value, or SettingChangeError."""
    setting = _SETTINGS.get(name)
    if setting is None:
        close = get_close_matches(name, LIVE_SETTINGS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SettingChangeError(name, f"unknown setting {name!r}{hint}")
    if name not in LIVE_SETTINGS:
        raise SettingChangeError(
            name,
            f"{name} cannot change while the server runs (it needs a restart); the live"
            f" settings are {', '.join(LIVE_SETTINGS)}",
        )
    integer = isinstance(setting.default, int)
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        kind = "an integer" if integer else "a number"
        raise SettingChangeError(name, f"{name} must be {kind}, got {value!r}")
    try:
        return setting.metadata["parse"](value)
    except ValueError as error:
        raise SettingChangeError(name, f"{name} {error}, got {value!r}") from None


def _changes(changed: Mapping[str, tuple[object, object]]) -> str:
    """``max_clients 3 -> 4, idle_timeout 0.0 -> 60.0``, or ``nothing changed``."""
    if not changed:
        return "nothing changed"
    return ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changed.items())
