"""Settings for the server and the client, from flags, environment and a TOML file.

Each setting is a field of a frozen dataclass whose metadata holds its help text and
its parser. One value is chosen per setting by precedence: command-line flag, then the
``ACKCHAT_<NAME>`` environment variable, then the config file (``--config`` or
``ACKCHAT_CONFIG``; its ``[serve]`` or ``[connect]`` table), then the default. Every
value is validated the same way wherever it came from, and a bad one is reported with
its source.
"""

from __future__ import annotations

import argparse
import ipaddress
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Generic, TypeVar

from ackchat.admission import parse_network_list
from ackchat.chat.names import InvalidNameError, room_name
from ackchat.errors import AckchatError

ENV_PREFIX = "ACKCHAT_"
CONFIG_ENV = "ACKCHAT_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOOPS = ("auto", "uvloop", "asyncio")
BENCH_SCENARIOS = ("echo", "connect", "idle", "status", "fanout")
ADDRESS_VISIBILITY = ("loopback", "all", "none")


class SettingsError(AckchatError):
    """A setting has a value that cannot be used; the message says which and where from."""


def _parse_int(value: object, minimum: int, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"must be {what}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"must be {what}") from None
    else:
        raise ValueError(f"must be {what}")
    if number < minimum:
        raise ValueError(f"must be {what}")
    return number


def positive_int(value: object) -> int:
    """A whole number of at least 1."""
    return _parse_int(value, 1, "a positive integer")


def non_negative_int(value: object) -> int:
    """A whole number of at least 0."""
    return _parse_int(value, 0, "an integer of 0 or more")


def port_number(value: object) -> int:
    """A TCP port; 0 asks the system for a free one."""
    port = _parse_int(value, 0, "a port number from 0 to 65535")
    if port > 65535:
        raise ValueError("must be a port number from 0 to 65535")
    return port


def non_negative_number(value: object) -> float:
    """A number, 0 or more: durations in seconds and rates (where documented, 0 is off)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number, 0 or more")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number, 0 or more") from None
    if not 0 <= number < float("inf"):
        raise ValueError("must be a number, 0 or more")
    return number


def text(value: object) -> str:
    """Any string."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def file_path(value: object) -> str:
    """The path of a file (checked when it is read); empty means none."""
    if not isinstance(value, str):
        raise ValueError("must be a file path")
    return value.strip()


def boolean(value: object) -> bool:
    """true/false, yes/no, on/off or 1/0."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def host_name(value: object) -> str:
    """A host name or IP address, without brackets or port."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a host name or IP address")
    text = value.strip()
    if any(character.isspace() for character in text) or "/" in text:
        raise ValueError("must be a host name or IP address")
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError("must be a host name or IP address, without a port") from None
    return text


def choice(*allowed: str) -> Callable[[object], str]:
    """One of a few words."""

    def parse(value: object) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def option(default: Any, parse: Callable[[object], Any], help: str, *, secret: bool = False) -> Any:
    """A settings field: its default, the parser that validates it, and its help text.

    A secret one is left out of the settings' repr, so it never reaches a log line.
    """
    return field(default=default, repr=not secret, metadata={"parse": parse, "help": help})


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``ackchat serve`` can be told."""

    host: str = option(
        "127.0.0.1", host_name, "address to listen on; 0.0.0.0 or :: serves a network"
    )
    port: int = option(1234, port_number, "TCP port to listen on")
    max_clients: int = option(3, positive_int, "most clients connected at once")
    max_line_bytes: int = option(
        65536, positive_int, "longest line accepted, in bytes; longer ones get an error"
    )
    max_output_bytes: int = option(
        1048576, positive_int, "most unsent reply bytes per client before it is disconnected"
    )
    history_limit: int = option(
        10000, non_negative_int, "departed clients kept in the cache; the oldest are dropped"
    )
    status_recent: int = option(
        1000,
        non_negative_int,
        "most recently departed clients that 'status' lists ('status all' lists the cache)",
    )
    idle_timeout: float = option(
        0.0, non_negative_number, "disconnect a client silent for this many seconds; 0 turns it off"
    )
    shutdown_timeout: float = option(
        5.0,
        non_negative_number,
        "on SIGINT/SIGTERM, how long to wait for clients before closing them",
    )
    keepalive: bool = option(True, boolean, "TCP keepalive on client sockets to find dead peers")
    keepalive_idle: int = option(60, positive_int, "seconds of silence before keepalive probes")
    keepalive_interval: int = option(10, positive_int, "seconds between keepalive probes")
    keepalive_count: int = option(5, positive_int, "unanswered probes before the peer is dead")
    backlog: int = option(1024, positive_int, "pending connections the kernel may queue")
    # Hostile and faulty peers (docs/SECURITY.md)
    line_timeout: float = option(
        30.0, non_negative_number, "a line once started must end within this many seconds; 0 off"
    )
    rate_limit: float = option(
        200000.0, non_negative_number, "lines per second a client may send on average; 0 off"
    )
    rate_burst: int = option(400000, positive_int, "lines a client may send at once above the rate")
    rate_strikes: int = option(
        100, positive_int, "lines refused for the rate limit before the client is disconnected"
    )
    max_per_address: int = option(
        16, non_negative_int, "connections at once from one address; 0 off"
    )
    connect_rate: float = option(
        10.0, non_negative_number, "new connections per second from one address; 0 off"
    )
    connect_burst: int = option(20, positive_int, "connections one address may open at once")
    limit_exempt: tuple[str, ...] = option(
        ("127.0.0.0/8", "::1"),
        parse_network_list,
        "networks free of the per-address limits (comma-separated)",
    )
    allow: tuple[str, ...] = option(
        (),
        parse_network_list,
        "if set, only these addresses/networks may connect (CIDR, comma-separated)",
    )
    deny: tuple[str, ...] = option(
        (), parse_network_list, "addresses/networks that may not connect (CIDR, comma-separated)"
    )
    show_addresses: str = option(
        "loopback",
        choice(*ADDRESS_VISIBILITY),
        "who sees client addresses in status: all, none, or loopback (clients on this machine)",
    )
    password: str = option(
        "", text, "shared secret clients must send with 'auth' before anything else", secret=True
    )
    password_file: str = option("", file_path, "read the password from this file's first line")
    auth_timeout: float = option(
        30.0, non_negative_number, "seconds a client has to authenticate; 0 off"
    )
    auth_attempts: int = option(3, positive_int, "wrong passwords before the connection is closed")
    auth_delay: float = option(
        1.0, non_negative_number, "seconds before answering a wrong password, times the attempt"
    )
    tls_cert: str = option(
        "", file_path, "TLS certificate chain (PEM); with --tls-key turns on TLS"
    )
    tls_key: str = option("", file_path, "TLS private key (PEM)")
    tls_port: int = option(
        0, port_number, "serve TLS on this port beside the plain one; 0: the main port is TLS"
    )
    # Chat (docs/PROTOCOL.md)
    room_history: int = option(
        50, non_negative_int, "messages each room keeps for /join and /history"
    )
    direct_history: int = option(
        50, non_negative_int, "direct messages kept per client for /history direct"
    )
    resume_grace: float = option(
        60.0, non_negative_number, "seconds a lost client may come back with /resume; 0 off"
    )
    resume_buffer: int = option(
        200, non_negative_int, "messages kept for a lost client until it resumes"
    )
    queue_warn: int = option(
        1000, positive_int, "unread messages after which a slow reader is warned"
    )
    queue_limit: int = option(
        5000, positive_int, "unread messages after which a slow reader is disconnected"
    )
    loop: str = option(
        "auto", choice(*LOOPS), "event loop: auto (uvloop if installed), uvloop or asyncio"
    )
    log_level: str = option("info", choice(*LOG_LEVELS), "least severe log level shown")

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("--tls-cert and --tls-key must be given together")
        if self.tls_port and not self.tls_cert:
            raise SettingsError("--tls-port needs --tls-cert and --tls-key")
        check_one_password(self.password, self.password_file)

    @property
    def tls(self) -> bool:
        """Whether TLS is served (on the main port, or on the TLS port beside it)."""
        return bool(self.tls_cert)

    def read_password(self) -> str:
        """The shared secret, from the setting or the first line of the password file."""
        return read_secret(self.password, self.password_file)


@dataclass(frozen=True)
class ClientSettings:
    """Everything ``ackchat connect`` can be told."""

    host: str = option("127.0.0.1", host_name, "server address to connect to")
    port: int = option(1234, port_number, "server TCP port")
    connect_timeout: float = option(
        10.0, non_negative_number, "give up connecting after this many seconds"
    )
    tls: bool = option(False, boolean, "connect with TLS, verifying the server's certificate")
    ca: str = option("", file_path, "with --tls: trust this CA file instead of the system's")
    insecure: bool = option(False, boolean, "with --tls: do not verify the certificate (testing)")
    password: str = option(
        "", text, "answer the server's password request with this (else it is asked)", secret=True
    )
    password_file: str = option("", file_path, "read the password from this file's first line")
    # Chat
    name: str = option("", text, "after connecting, take this name (/nick); exit 7 if refused")
    room: str = option(
        "", text, "after connecting, join these rooms (comma-separated); exit 7 if refused"
    )
    send: str = option("", text, "send this one line, print its reply and exit (stdin is not read)")
    reconnect: bool = option(
        True, boolean, "on a terminal, reconnect and resume when the connection is lost"
    )
    reconnect_timeout: float = option(
        60.0, non_negative_number, "give up reconnecting after this many seconds"
    )

    def __post_init__(self) -> None:
        check_one_password(self.password, self.password_file)
        if (self.ca or self.insecure) and not self.tls:
            raise SettingsError("--ca and --insecure only apply with --tls")

    def read_password(self) -> str:
        """The shared secret, from the setting or the first line of the password file."""
        return read_secret(self.password, self.password_file)


def check_one_password(password: str, password_file: str) -> None:
    """A password may come from the setting or from a file, not both."""
    if password and password_file:
        raise SettingsError("give --password or --password-file, not both")


def read_secret(password: str, password_file: str) -> str:
    """The password itself, or the first line of the password file ("" for none)."""
    if not password_file:
        return password
    try:
        with open(password_file, encoding="utf-8") as file:
            secret = file.readline().rstrip("\r\n")
    except OSError as error:
        raise SettingsError(
            f"cannot read the password file {password_file}: {error.strerror}"
        ) from None
    if not secret:
        raise SettingsError(f"the password file {password_file} has an empty first line")
    return secret


def room_text(value: object) -> str:
    """A room name: ``#`` and 1 to 30 letters, digits, ``_`` or ``-`` (the ``#`` optional)."""
    try:
        return room_name(text(value))
    except InvalidNameError as error:
        raise ValueError(f"must be a room name ({error})") from None


@dataclass(frozen=True)
class BenchSettings:
    """Everything ``ackchat bench`` can be told."""

    scenario: str = option("echo", choice(*BENCH_SCENARIOS), "what to measure")
    host: str = option("127.0.0.1", host_name, "server address")
    port: int = option(1234, port_number, "server port")
    connections: int = option(
        0,
        non_negative_int,
        "connections (echo, idle), parallel clients (connect) or receivers (fanout);"
        " 0: 50, or 1,000 for fanout",
    )
    pipeline: int = option(
        1, positive_int, "requests in flight per connection (fanout: messages in flight)"
    )
    warmup: float = option(1.0, non_negative_number, "seconds unmeasured")
    duration: float = option(
        5.0, non_negative_number, "seconds measured (idle: seconds to hold the clients)"
    )
    requests: int = option(
        0, non_negative_int, "stop after this many replies, cycles or fanout messages; 0: time"
    )
    workers: int = option(1, positive_int, "load generator processes (echo, connect, fanout)")
    line_protocol: bool = option(
        False, boolean, "the server sends no greeting (a plain line echo server, redis-server)"
    )
    request: str = option("", text, "send this line every time instead of varied ones")
    expect: str = option(
        "", text, "a reply is right if it ends with this (default: request + ' ACK')"
    )
    size: int = option(16, positive_int, "message bytes")
    quit: str = option("", text, "line-protocol connect: the line that makes it close")
    server_pid: int = option(0, non_negative_int, "read this server process's memory; 0: none")
    cache_fill: int = option(
        10000, non_negative_int, "status: connect/exit cycles that fill the cache first"
    )
    status_clients: int = option(10, positive_int, "status: clients asking 'status all' in a loop")
    status_repeats: int = option(20, positive_int, "status: timed 'status all' requests alone")
    rate: float = option(0.0, non_negative_number, "fanout: messages per second at most; 0: any")
    room: str = option("#bench", room_text, "fanout: the room")
    json: bool = option(False, boolean, "print the results as JSON")


SettingsT = TypeVar("SettingsT", ServerSettings, ClientSettings, BenchSettings)

TABLES: dict[type[Any], str] = {
    ServerSettings: "serve",
    ClientSettings: "connect",
    BenchSettings: "bench",
}


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
    for setting in fields(cls):
        default = _show(setting.default)
        help_text = f"{setting.metadata['help']} (default: {default}; env {env_name(setting.name)})"
        if setting.metadata["parse"] is boolean:
            parser.add_argument(
                flag_name(setting.name),
                dest=setting.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag_name(setting.name),
                dest=setting.name,
                metavar=setting.name.upper(),
                default=None,
                help=help_text,
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
        for setting in fields(cls)
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
    known = {setting.name for setting in fields(cls)}
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
    for setting in fields(cls):
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
