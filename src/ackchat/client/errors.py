"""How ``ackchat connect`` ends: its exit codes, and the error that carries one.

Exit codes:

- ``EXIT_OK`` (0): the session ended with ``exit`` (typed, piped, or sent for Ctrl-C,
  Ctrl-D or the end of input).
- ``EXIT_ERROR`` (1): any other failure, such as a server that does not speak ackchat.
- ``EXIT_USAGE`` (2): bad options or settings (argparse exits with it too).
- ``EXIT_CONNECT_FAILED`` (3): connection refused, host unknown or unreachable, or no
  connection or greeting within ``connect_timeout``.
- ``EXIT_SERVER_FULL`` (4): the server had no free slot.
- ``EXIT_SERVER_CLOSED`` (5): the server closed the connection before we said ``exit``
  (it shut down, or we were idle too long).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECT_FAILED = 3
EXIT_SERVER_FULL = 4
EXIT_SERVER_CLOSED = 5

SERVER_CLOSED = "the server closed the connection."


class ClientError(Exception):
    """Ends the client: the message is one sentence for stderr, with the exit code to use."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
