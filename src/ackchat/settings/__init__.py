"""Settings for the server, the client and the load generator: flags, environment, TOML file.

Each setting is a field of a frozen dataclass whose metadata holds its help text and
its parser (:mod:`~ackchat.settings.values`). One value is chosen per setting by
precedence (:mod:`~ackchat.settings.loading`): command-line flag, then the
``ACKCHAT_<NAME>`` environment variable, then the config file (``--config`` or
``ACKCHAT_CONFIG``; its ``[serve]``, ``[connect]``, ``[bench]`` or ``[admin]`` table),
then the default.
"""

from ackchat.settings.admin import AdminSettings
from ackchat.settings.bench import BENCH_SCENARIOS, BenchSettings
from ackchat.settings.client import ClientSettings
from ackchat.settings.loading import (
    CONFIG_ENV,
    ENV_PREFIX,
    Loaded,
    add_arguments,
    config_path,
    env_name,
    flag_name,
    given_flags,
    load,
    read_config_table,
    resolve,
    settings_of,
)
from ackchat.settings.server import ServerSettings
from ackchat.settings.values import SettingsError

__all__ = [
    "BENCH_SCENARIOS",
    "CONFIG_ENV",
    "ENV_PREFIX",
    "AdminSettings",
    "BenchSettings",
    "ClientSettings",
    "Loaded",
    "ServerSettings",
    "SettingsError",
    "add_arguments",
    "config_path",
    "env_name",
    "flag_name",
    "given_flags",
    "load",
    "read_config_table",
    "resolve",
    "settings_of",
]
