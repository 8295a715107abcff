"""Choosing each setting's value: command-line flag, ``ACKCHAT_*`` variable, TOML file, default.

A setting is a dataclass field made by :func:`~ackchat.settings.values.option`, whose
metadata holds its parser and help text; fields without it are not settings. Every value
is validated the same way wherever it came from, and a bad one is reported with its
source. A boolean has a ``--<flag>`` and a ``--no-<flag>``; so has an optional file
(``--<flag> PATH``), whose ``--no-<flag>`` means no file.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import Field, dataclass, field, fields
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Generic, TypeVar

from ackchat.settings.admin import AdminSettings
from ackchat.settings.bench import BenchSettings
from ackchat.settings.client import ClientSettings
from ackchat.settings.server import ServerSettings
from ackchat.settings.values import SettingsError, boolean, optional_file_path

ENV_PREFIX = "ACKCHAT_"
CONFIG_ENV = "ACKCHAT_CONFIG"

SettingsT = TypeVar("SettingsT", ServerSettings, ClientSettings, BenchSettings, AdminSettings)

TABLES: dict[type[Any], str] = {
    ServerSettings: "serve",
    ClientSettings: "connect",
    BenchSettings: "bench",
    AdminSettings: "admin",
}


def settings_of(cls: type[Any]) -> list[Field[Any]]:
    """The fields of ``cls`` that are settings (made by ``option``), in order."""
    return [member for member in fields(cls) if "parse" in member.metadata]


def env_name(name: str) -> str:
    """The environment variable for a setting: ``max_clients`` → ``ACKCHAT_MAX_CLIENTS``."""
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    """The command-line flag for a setting: ``max_clients`` → ``--max-clients``."""
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """Add a flag for each setting of ``cls`` (and ``--config``) to ``parser``."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML config file, read from its [{TABLES[cls]}] table (env {CONFIG_ENV})",
    )
    for setting in settings_of(cls):
        default = setting.metadata["shown_default"] or _show(setting.default)
        help_text = f"{setting.metadata['help']} (default: {default}; env {env_name(setting.name)})"
        flag = flag_name(setting.name)
        if setting.metadata["parse"] is boolean:
            parser.add_argument(
                flag,
                dest=setting.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
            continue
        parser.add_argument(
            flag, dest=setting.name, metavar=setting.name.upper(), default=None, help=help_text
        )
        if setting.metadata["parse"] is optional_file_path:
            # False is what the parser takes for "no file", as from TOML.
            parser.add_argument(
                "--no-" + flag.removeprefix("--"),
                dest=setting.name,
                action="store_const",
                const=False,
                help=f"use no file for {flag}",
            )


def _show(default: object) -> str:
    if default == "" or default == ():
        return "none"
    if isinstance(default, tuple):
        return ",".join(default)
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def given_flags(namespace: argparse.Namespace, cls: type[Any]) -> dict[str, object]:
    """The settings of ``cls`` that were given on the command line."""
    values = vars(namespace)
    return {
        setting.name: values[setting.name]
        for setting in settings_of(cls)
        if values.get(setting.name) is not None
    }


def config_path(namespace: argparse.Namespace, env: Mapping[str, str]) -> Path | None:
    """The config file named by ``--config`` or ``ACKCHAT_CONFIG``, if any."""
    path = getattr(namespace, "config", None) or env.get(CONFIG_ENV)
    return Path(path) if path else None


def read_config_table(path: Path, cls: type[Any]) -> dict[str, object]:
    """The table for ``cls`` from a TOML config file, with its keys checked."""
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None
    table_name = TABLES[cls]
    unknown_tables = sorted(set(document) - set(TABLES.values()))
    if unknown_tables:
        raise SettingsError(
            f"config file {path}: unknown table or key {unknown_tables[0]!r};"
            f" settings go in [{'] or ['.join(TABLES.values())}]"
            + _did_you_mean(unknown_tables[0], TABLES.values())
        )
    table = document.get(table_name, {})
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: {table_name} must be a table")
    known = {setting.name for setting in settings_of(cls)}
    values: dict[str, object] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise SettingsError(
                f"config file {path}: unknown setting {key!r} in [{table_name}]"
                + _did_you_mean(name, known)
            )
        values[name] = value
    return values


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean 'max_clients'?`` for the known name closest to ``name``, if any."""
    close = get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Loaded(Generic[SettingsT]):
    """Settings, and what the config file said, so that a reload can report on it."""

    settings: SettingsT
    # The config file read (None: there is none).
    path: Path | None = None
    # The settings the file sets, and of those the ones a flag or variable overrides,
    # with the flag or variable that does.
    in_file: frozenset[str] = frozenset()
    overridden: Mapping[str, str] = field(default_factory=dict)


def resolve(
    cls: type[SettingsT],
    flags: Mapping[str, object],
    env: Mapping[str, str],
    path: Path | None,
) -> SettingsT:
    """Build settings from flags, environment, config file and defaults, in that order."""
    return load(cls, flags, env, path).settings


def load(
    cls: type[SettingsT],
    flags: Mapping[str, object],
    env: Mapping[str, str],
    path: Path | None,
) -> Loaded[SettingsT]:
    """:func:`resolve`, keeping what the config file set and what overrode it."""
    from_file = read_config_table(path, cls) if path is not None else {}
    chosen: dict[str, Any] = {}
    overridden: dict[str, str] = {}
    for setting in settings_of(cls):
        name = setting.name
        if name in flags:
            raw, source = flags[name], flag_name(name)
        elif env_name(name) in env:
            raw, source = env[env_name(name)], f"environment variable {env_name(name)}"
        elif name in from_file:
            raw, source = from_file[name], f"{name} in config file {path}"
        else:
            continue
        if name in from_file and (name in flags or env_name(name) in env):
            overridden[name] = source
        try:
            chosen[name] = setting.metadata["parse"](raw)
        except ValueError as error:
            raise SettingsError(f"{source} {error}, got {raw!r}") from None
    return Loaded(cls(**chosen), path, frozenset(from_file), overridden)
