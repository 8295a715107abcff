"""How ``ackchat connect`` ends: its exit codes, and the error that carries one.

Exit codes:

- ``EXIT_OK`` (0): the session ended with ``exit`` (typed, piped, or sent for Ctrl-C,
  Ctrl-D or the end of input), or Ctrl-C or Ctrl-D left the password prompt.
- ``EXIT_ERROR`` (1): any other failure, such as a server that does not speak ackchat.
- ``EXIT_USAGE`` (2): bad options or settings (argparse exits with it too), including a
  password file or CA file that cannot be read.
- ``EXIT_CONNECT_FAILED`` (3): connection refused (by the system, or by the server's
  address policy), host unknown or unreachable, TLS handshake or certificate verification
  failed, or no connection or greeting within ``connect_timeout`` (if it is not 0).
- ``EXIT_SERVER_FULL`` (4): the server had no free slot.
- ``EXIT_SERVER_CLOSED`` (5): the server closed the connection before we said ``exit``
  (it shut down, or we were idle too long), or the connection was lost and could not be
  restored (the interactive client tries; piped input and ``--send`` do not), or the
  server drains and asked us to reconnect (the interactive client does so and resumes;
  piped input stops, as for a lost connection; ``--send`` still gets its reply).
- ``EXIT_AUTH_FAILED`` (6): the server wants a password and none was configured (piped
  input), the configured one was wrong, or the server gave up: too many wrong passwords,
  or none in time.
- ``EXIT_REFUSED`` (7): the server refused what the options asked for: the ``--name``
  (taken or invalid), a ``--room``, or the ``--send`` line (answered with ``ERROR``).
- ``EXIT_INTERRUPTED`` (130): Ctrl-C (SIGINT) outside the interactive prompt, the code a
  shell gives a command that SIGINT ended.
"""

from __future__ import annotations

from ackchat.errors import AckchatError
from ackchat.protocol.replies import host_port

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECT_FAILED = 3
EXIT_SERVER_FULL = 4
EXIT_SERVER_CLOSED = 5
EXIT_AUTH_FAILED = 6
EXIT_REFUSED = 7
EXIT_INTERRUPTED = 130

SERVER_CLOSED = "the server closed the connection."
CONNECTION_LOST = "the connection to the server was lost."


class ClientError(AckchatError):
    """Ends the client: the message is one sentence for stderr, with the exit code to use."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ConnectionLostError(ClientError):
    """The connection ended without ``exit`` and without a goodbye: it may be resumed."""

    def __init__(self, message: str = CONNECTION_LOST) -> None:
        super().__init__(message, EXIT_SERVER_CLOSED)


class ServerDrainingError(ConnectionLostError):
    """The server drains and asked us to reconnect: to ``redirect`` (host, port) if given.

    The session is held by the server as for a lost connection, so it may be resumed.
    """

    def __init__(self, redirect: tuple[str, int] | None) -> None:
        where = f" to {host_port(*redirect)}" if redirect is not None else ""
        super().__init__(f"the server is draining and asked its clients to reconnect{where}.")
        self.redirect = redirect
