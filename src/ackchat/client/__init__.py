"""The ackchat client: interactive on a terminal, line by line from a pipe or file, or one line.

``run_client`` is the entry point; the exit codes are documented in
:mod:`ackchat.client.errors`.
"""

from __future__ import annotations

import sys

from ackchat.client.errors import (
    EXIT_AUTH_FAILED,
    EXIT_CONNECT_FAILED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SERVER_CLOSED,
    EXIT_SERVER_FULL,
    EXIT_USAGE,
    ClientError,
)
from ackchat.client.piped import run_piped, run_send
from ackchat.settings import ClientSettings

__all__ = [
    "EXIT_AUTH_FAILED",
    "EXIT_CONNECT_FAILED",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_SERVER_CLOSED",
    "EXIT_SERVER_FULL",
    "EXIT_USAGE",
    "ClientError",
    "run_client",
]


async def run_client(settings: ClientSettings) -> int:
    """Talk to the server: one line with ``--send``, else interactively if stdin is a terminal.

    A failure is reported as one ``ackchat: ...`` line on stderr, never a traceback.
    """
    try:
        if settings.send:
            return await run_send(settings, sys.stdout)
        if sys.stdin.isatty():
            # Imported here: prompt_toolkit takes a while to load and pipes do not need it.
            from ackchat.client.interactive import run_interactive

            return await run_interactive(settings)
        return await run_piped(settings, sys.stdin.fileno(), sys.stdout)
    except ClientError as error:
        print(f"ackchat: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"ackchat: {error.strerror or error}.", file=sys.stderr)
        return EXIT_ERROR
