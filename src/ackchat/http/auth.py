"""The admin API's bearer token: where it comes from, and how a request is checked.

The token comes from ``--admin-token-file`` or ``ACKCHAT_ADMIN_TOKEN``; without either,
one is made at start (256 random bits) and written to a new file that only the
server's user can read, in ``$XDG_RUNTIME_DIR`` (a directory of that user's own) or
else the system's temporary directory. The log names the file, never the token, and
the file is removed when the server stops.

Requests carry it as ``Authorization: Bearer <token>``. It is compared in constant time
(``hmac.compare_digest``), and a missing token and a wrong one get the same answer.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ackchat.settings import ServerSettings, SettingsError

TOKEN_BYTES = 32
BEARER = "bearer"


@dataclass(frozen=True)
class AdminToken:
    """The token, and the file it was written to if it was made at start."""

    value: str
    made_file: Path | None = None

    def matches(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries this token (constant time)."""
        if authorization is None:
            return False
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != BEARER:
            return False
        return hmac.compare_digest(given.strip().encode(), self.value.encode())

    def forget(self) -> None:
        """Remove the file of a token made at start (a given one is left alone)."""
        if self.made_file is not None:
            self.made_file.unlink(missing_ok=True)


def admin_token(settings: ServerSettings, environ: Mapping[str, str] | None = None) -> AdminToken:
    """The configured token, or a new one written to a file only this user can read.

    Raises :class:`SettingsError` if the token file cannot be read or made.
    """
    given = settings.read_admin_token()
    if given:
        return AdminToken(given)
    # Hexadecimal, so that it never starts with '-' and reads as an option on a command line.
    token = secrets.token_hex(TOKEN_BYTES)
    return AdminToken(token, _write_token_file(token, os.environ if environ is None else environ))


def _write_token_file(token: str, environ: Mapping[str, str]) -> Path:
    """A new file (mode 0600) holding ``token``, in the user's runtime or temporary directory."""
    directories = [environ.get("XDG_RUNTIME_DIR", ""), tempfile.gettempdir()]
    failures = []
    for directory in filter(None, directories):
        try:
            # mkstemp makes the file with mode 0600, and never opens an existing one.
            handle, name = tempfile.mkstemp(prefix="ackchat-admin-", suffix=".token", dir=directory)
        except OSError as error:
            failures.append(f"{directory}: {error.strerror}")
            continue
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(token + "\n")
        return Path(name)
    raise SettingsError(f"cannot write the admin token file ({'; '.join(failures)})")
