"""The settings of ``ackchat admin``, and the admin token that it and the server share.

The token is a bearer token for the admin HTTP API: given as ``ACKCHAT_ADMIN_TOKEN``
(or ``admin_token`` in a config file), or as the first line of a file. Both the server
(``--admin-token-file``) and ``ackchat admin`` (``--token-file``) read it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from ackchat.settings.values import SettingsError, boolean, file_path, option, text

DEFAULT_URL = "http://127.0.0.1:8080"


def check_one_token(token: str, token_file: str, file_flag: str) -> None:
    """The token may come from the setting or from a file, not both."""
    if token and token_file:
        raise SettingsError(f"give {file_flag} or ACKCHAT_ADMIN_TOKEN, not both")


def read_token(token: str, token_file: str) -> str:
    """The token itself, or the first line of ``token_file`` ("" when neither is given)."""
    if not token_file:
        return token.strip()
    try:
        with open(token_file, encoding="utf-8") as file:
            secret = file.readline().strip()
    except OSError as error:
        raise SettingsError(
            f"cannot read the admin token file {token_file}: {error.strerror}"
        ) from None
    if not secret:
        raise SettingsError(f"the admin token file {token_file} has an empty first line")
    return secret


def http_url(value: object) -> str:
    """An ``http://`` or ``https://`` URL, without a trailing slash."""
    url = text(value).strip().rstrip("/")
    scheme, separator, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not separator or not rest:
        raise ValueError("must be an http:// or https:// URL")
    return url


def positive_number(value: object) -> float:
    """A number above 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number above 0")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number above 0") from None
    if not 0 < number < float("inf"):
        raise ValueError("must be a number above 0")
    return number


@dataclass(frozen=True)
class AdminSettings:
    """Everything ``ackchat admin`` can be told."""

    url: str = option(DEFAULT_URL, http_url, "the server's admin API (its --http address)")
    admin_token: str = option(
        "", text, "the admin token (the server's ACKCHAT_ADMIN_TOKEN)", secret=True
    )
    token_file: str = option(
        "", file_path, "read the admin token from this file's first line (the one the server logs)"
    )
    json: bool = option(False, boolean, "print the API's answer as JSON")
    timeout: float = option(
        10.0, positive_number, "seconds to wait for the server's answer before giving up"
    )

    def __post_init__(self) -> None:
        check_one_token(self.admin_token, self.token_file, "--token-file")

    def read_token(self) -> str:
        """The token to send, or "" for none (read calls may not need one)."""
        return read_token(self.admin_token, self.token_file)
