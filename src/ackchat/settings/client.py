"""The settings of ``ackchat connect``."""

from __future__ import annotations

from dataclasses import dataclass

from ackchat.settings.password import check_one_password, read_secret
from ackchat.settings.values import (
    SettingsError,
    boolean,
    file_path,
    host_name,
    non_negative_number,
    option,
    port_number,
    text,
)


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
