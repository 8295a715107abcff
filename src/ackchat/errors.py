"""The root of ackchat's own exceptions.

Every error ackchat raises on purpose derives from :class:`AckchatError`, so a caller
can tell them from bugs. Each package has its own below it:

- ``SettingsError`` (ackchat.settings): a setting cannot be used; exit code 2.
- ``TlsSetupError`` (ackchat.tls): TLS cannot be set up from the files given.
- ``ChatError`` (ackchat.chat.hub): a chat command cannot be done; an ``ERROR`` reply.
- ``BackendUnavailableError`` (ackchat.backend.interface): the shared state cannot be
  reached now; a "try again later" reply.
- ``BenchFailedError`` (ackchat.bench.runner): a benchmark could not run.
- ``ClientError`` (ackchat.client.errors): the client stops, with an exit code.
"""

from __future__ import annotations


class AckchatError(Exception):
    """An error ackchat raises on purpose; its message is a plain sentence."""
