"""The root of ackchat's own exceptions.

Every error ackchat raises on purpose derives from :class:`AckchatError`, so a caller
can tell them from bugs. Each package has its own below it:

- ``SettingsError`` (ackchat.settings): a setting cannot be used; exit code 2.
- ``TlsSetupError`` (ackchat.tls): TLS cannot be set up from the files given.
- ``ChatError`` (ackchat.chat.hub): a chat command cannot be done; an ``ERROR`` reply.
- ``BackendUnavailableError`` (ackchat.backend.interface): the shared state cannot be
  reached now; a "try again later" reply.
- ``InvalidNameError`` (ackchat.chat.names): a client or room name breaks the rules.
- ``BenchError`` (ackchat.bench.client): a benchmark cannot go on, with an exit code;
  ``BenchFailedError`` (ackchat.bench.runner) below it is what ``ackchat bench`` reports.
- ``ClientError`` (ackchat.client.errors): the client stops, with an exit code.

The pure protocol package imports nothing else of ackchat, so its two parse errors
(``InvalidUtf8Error``, ``CommandUsageError``) stay ``ValueError``; the sessions that call
it turn them into ``ERROR`` replies.
"""

from __future__ import annotations


class AckchatError(Exception):
    """An error ackchat raises on purpose; its message is a plain sentence."""
