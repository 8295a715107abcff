"""Parsers that turn a raw setting (a flag's text, a variable, a TOML value) into its value.

Each raises ``ValueError`` with the end of a sentence (``must be a positive integer``);
:mod:`ackchat.settings.loading` puts the setting's source in front of it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import field
from typing import Any

from ackchat.backend.redis.keys import key_prefix
from ackchat.chat.names import InvalidNameError, room_name
from ackchat.errors import AckchatError


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


def port_list(value: object) -> tuple[int, ...]:
    """TCP ports, comma-separated (or a TOML list); empty means none."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    ports = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        port = port_number(item)
        if port == 0:
            raise ValueError("must be port numbers from 1 to 65535, comma-separated")
        ports.append(port)
    return tuple(ports)


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


def positive_number(value: object) -> float:
    """A number above 0: a duration that cannot be turned off."""
    try:
        number = non_negative_number(value)
    except ValueError:
        number = 0.0
    if number <= 0:
        raise ValueError("must be a number above 0")
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


# The word that turns an optional file off in a variable or a config file (TOML may say
# false instead; on the command line it is --no-<flag>).
NO_FILE = "off"


def optional_file_path(value: object) -> str | None:
    """A file path, ``""`` for the default file, or None for no file at all.

    None comes from ``off`` (a variable, a config string), TOML's ``false``, or the
    ``--no-<flag>`` that :func:`~ackchat.settings.loading.add_arguments` adds for it.
    """
    if value is False or (isinstance(value, str) and value.strip().lower() == NO_FILE):
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be a file path, or {NO_FILE}")
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


def host_and_port(value: object) -> str:
    """``HOST:PORT`` (an IPv6 host in brackets: ``[::1]:1234``), or empty for none."""
    if not isinstance(value, str):
        raise ValueError("must be HOST:PORT")
    text = value.strip()
    if not text:
        return ""
    host, separator, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("must be HOST:PORT, with an IPv6 host in brackets ([::1]:1234)")
    try:
        host = host_name(host)
        number = port_number(port)
    except ValueError:
        raise ValueError("must be HOST:PORT") from None
    if not separator or number == 0:
        raise ValueError("must be HOST:PORT")
    return f"[{host}]:{number}" if ":" in host else f"{host}:{number}"


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redis_url(value: object) -> str:
    """A Redis URL (``redis://``, ``rediss://`` with TLS, or ``unix://``), or empty for none."""
    if not isinstance(value, str):
        raise ValueError("must be a Redis URL (redis://HOST:PORT/DB)")
    text = value.strip()
    if text and not text.lower().startswith(REDIS_SCHEMES):
        raise ValueError("must be a Redis URL starting with redis://, rediss:// or unix://")
    return text


def cluster_text(value: object) -> str:
    """A cluster's name, as it goes into every key: 1 to 64 letters, digits, _ - or ."""
    if not isinstance(value, str):
        raise ValueError("must be a cluster name")
    try:
        key_prefix(value.strip())
    except ValueError:
        raise ValueError("must be 1 to 64 letters, digits, '_', '-' or '.'") from None
    return value.strip()


def node_name(value: object) -> str:
    """A node's name in a cluster: up to 100 characters without spaces, or empty for the
    default."""
    if not isinstance(value, str):
        raise ValueError("must be a node name")
    text = value.strip()
    if len(text) > 100 or any(character.isspace() or character in "{}" for character in text):
        raise ValueError("must be up to 100 characters, without spaces or braces")
    return text


def listen_address(value: object) -> str:
    """``[HOST:]PORT`` to listen on, as ``HOST:PORT`` (``127.0.0.1`` when no host is
    given, an IPv6 host in brackets, port 0 for any free one), or empty for none."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be [HOST:]PORT")
    text = value.strip()
    if not text:
        return ""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("must be [HOST:]PORT, with an IPv6 host in brackets ([::1]:8080)")
    try:
        host = host_name(host) if host else "127.0.0.1"
        number = port_number(port)
    except ValueError:
        raise ValueError("must be [HOST:]PORT") from None
    return f"[{host}]:{number}" if ":" in host else f"{host}:{number}"


def split_address(address: str) -> tuple[str, int]:
    """The host (without brackets) and port of a ``HOST:PORT`` made by a parser here."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def choice(*allowed: str) -> Callable[[object], str]:
    """One of a few words."""

    def parse(value: object) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def option(
    default: Any,
    parse: Callable[[object], Any],
    help: str,
    *,
    secret: bool = False,
    shown_default: str = "",
) -> Any:
    """A settings field: its default, the parser that validates it, and its help text.

    A secret one is left out of the settings' repr, so it never reaches a log line.
    ``shown_default`` is what ``--help`` says the default is when the value itself would
    not tell (an empty path that stands for a file found at run time).
    """
    metadata = {"parse": parse, "help": help, "shown_default": shown_default}
    return field(default=default, repr=not secret, metadata=metadata)


def room_text(value: object) -> str:
    """A room name: ``#`` and 1 to 30 letters, digits, ``_`` or ``-`` (the ``#`` optional)."""
    try:
        return room_name(text(value))
    except InvalidNameError as error:
        raise ValueError(f"must be a room name ({error})") from None
