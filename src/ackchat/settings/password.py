"""The shared secret: given as a setting or as a file, never both."""

from __future__ import annotations

from ackchat.settings.values import SettingsError


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
