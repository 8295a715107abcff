"""What a SIGHUP changes: the config file read again, held against the running settings.

Pure: it takes the running settings and the freshly loaded ones, and returns the
settings to run with and the log lines that say what happened. Only the settings in
:data:`LIVE_SETTINGS` change while the server runs; a file that changes another one is
told that it needs a restart, and a setting a flag or ``ACKCHAT_*`` variable gives
stays as given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ackchat.settings import Loaded, ServerSettings

# The settings a reload applies to the running server.
LIVE_SETTINGS = ("max_clients",)
# Settings whose values never reach a log line.
_SECRET = frozenset(setting.name for setting in fields(ServerSettings) if not setting.repr)


@dataclass(frozen=True)
class Reload:
    """The outcome of a reload: the settings to run with and the report to log."""

    settings: ServerSettings
    changed: dict[str, tuple[object, object]]
    report: list[str]


def plan_reload(running: ServerSettings, loaded: Loaded[ServerSettings]) -> Reload:
    """Apply the live settings of ``loaded`` to ``running``; say what changed and what not."""
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
    where = f"reload of {loaded.path}"
    changed: dict[str, tuple[object, object]] = {}
    needs_restart: list[str] = []
    for setting in fields(ServerSettings):
        name = setting.name
        old, new = getattr(running, name), getattr(fresh, name)
        if old == new:
            continue
        if name in LIVE_SETTINGS:
            changed[name] = (old, new)
        else:
            needs_restart.append(f"{name} ({old!r} -> {new!r})" if setting.repr else name)
    report = [
        f"{where}: "
        + (
            ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changed.items())
            if changed
            else "nothing changed"
        )
    ]
    if needs_restart:
        report.append(
            f"{where}: {', '.join(needs_restart)} changed in the file but needs a restart;"
            " left as it is"
        )
    for name, source in sorted(loaded.overridden.items()):
        kept = "as it is" if name in _SECRET else f"at {getattr(running, name)!r}"
        report.append(f"{where}: {name} in the file is overridden by {source}; left {kept}")
    live: dict[str, Any] = {name: new for name, (_, new) in changed.items()}
    return Reload(replace(running, **live), changed, report)
