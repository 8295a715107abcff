"""The settings of ``ackchat connect``."""

from __future__ import annotations

from dataclasses import dataclass

from ackchat.settings.password import check_one_password, read_secret
from ackchat.settings.values import (
    NO_FILE,
    SettingsError,
    boolean,
    file_path,
    host_name,
    non_negative_number,
    option,
    optional_file_path,
    port_number,
    text,
)

# Where the input history goes, under the XDG state directory (see ackchat.client.history).
DEFAULT_HISTORY = "ackchat/history"


@dataclass(frozen=True)
class ClientSettings:
    """Everything ``ackchat connect`` can be told."""

    host: str = option("127.0.0.1", host_name, "server address to connect to")
    port: int = option(1234, port_number, "server TCP port")
    connect_timeout: float = option(
        10.0,
        non_negative_number,
        "give up connecting, then waiting for the greeting, after this many seconds;"
        " 0 waits as long as the system does",
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
        60.0,
        non_negative_number,
        "give up reconnecting after this many seconds; 0 keeps trying without a time limit",
    )
    history_file: str | None = option(
        "",
        optional_file_path,
        "on a terminal, keep the input history between runs in this file (never passwords"
        f" or auth lines); {NO_FILE} or --no-history-file: for this run only",
        shown_default=f"$XDG_STATE_HOME/{DEFAULT_HISTORY}, or ~/.local/state/{DEFAULT_HISTORY}",
    )

    @property
    def connect_limit(self) -> float | None:
        """Seconds to wait for the connection, and then for each line before the greeting.

        None, for no limit of the client's own, when ``connect_timeout`` is 0.
        """
        return self.connect_timeout or None

    @property
    def reconnect_limit(self) -> float | None:
        """Seconds to go on reconnecting; None, for no limit, when ``reconnect_timeout`` is 0."""
        return self.reconnect_timeout or None

    def __post_init__(self) -> None:
        check_one_password(self.password, self.password_file)
        if (self.ca or self.insecure) and not self.tls:
            raise SettingsError("--ca and --insecure only apply with --tls")

    def read_password(self) -> str:
        """The shared secret, from the setting or the first line of the password file."""
        return read_secret(self.password, self.password_file)
