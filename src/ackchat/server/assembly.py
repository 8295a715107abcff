"""Assembling a server from its settings: backend, address policy, TLS, listeners.

The composition root: :class:`ChatServer` reads the settings once, builds each part
and hands the parts to the ones that need them; it also starts and stops them in
order and runs the housekeeping that belongs to none of them alone.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ackchat.admission import AddressPolicy, is_loopback
from ackchat.backend.interface import Backend, BackendUnavailableError
from ackchat.backend.memory import MemoryBackend
from ackchat.backend.pending import Pending
from ackchat.server.connection import ClientConnection
from ackchat.server.listener import Listener
from ackchat.server.session import ServerCounters, SessionContext
from ackchat.settings import ServerSettings, SettingsError
from ackchat.tls import TlsSetupError, server_context

log = logging.getLogger("ackchat.server")

# Seconds between housekeeping rounds (lingering connections, expired held sessions).
HOUSEKEEPING_INTERVAL = 1.0


class SystemClock:
    """The process's clocks: wall time for what is shown, monotonic for deadlines."""

    wall = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)


def memory_backend(settings: ServerSettings) -> MemoryBackend:
    """The default backend, sized by the settings."""
    return MemoryBackend(
        SystemClock(),
        max_clients=settings.max_clients,
        history_limit=settings.history_limit,
        room_history=settings.room_history,
        direct_history=settings.direct_history,
        resume_grace=settings.resume_grace,
        resume_buffer=settings.resume_buffer,
    )


def address_policy(settings: ServerSettings) -> AddressPolicy:
    """The per-address policy the settings describe (allow, deny, limits)."""
    return AddressPolicy(
        allow=settings.allow,
        deny=settings.deny,
        max_per_address=settings.max_per_address,
        connect_rate=settings.connect_rate,
        connect_burst=settings.connect_burst,
        exempt=settings.limit_exempt,
    )


class ChatServer:
    """An ackchat server: its backend, its listeners and its sessions' shared context."""

    def __init__(self, settings: ServerSettings, backend: Backend | None = None) -> None:
        """Raises :class:`SettingsError` if the password or TLS files cannot be used."""
        self.settings = settings
        self.backend: Backend = backend or memory_backend(settings)
        secret = settings.read_password()
        try:
            tls = server_context(settings.tls_cert, settings.tls_key) if settings.tls else None
        except TlsSetupError as error:
            raise SettingsError(str(error)) from None
        self.counters = ServerCounters()
        self.context = SessionContext(
            settings=settings,
            backend=self.backend,
            admission=address_policy(settings),
            password=secret.encode() if secret else None,
            counters=self.counters,
            clock=time.monotonic,
        )
        self.listener = Listener(self.context, tls)
        self._housekeeper: asyncio.TimerHandle | None = None

    @property
    def port(self) -> int:
        """The main port actually bound (useful when the settings asked for port 0)."""
        return self.listener.port

    @property
    def tls_port(self) -> int | None:
        """The separate TLS port actually bound, if one was asked for."""
        return self.listener.tls_port

    @property
    def connections(self) -> frozenset[ClientConnection]:
        """Sockets open now, including refused ones still being closed."""
        return self.listener.connections

    @property
    def open_connections(self) -> int:
        """How many sockets are open now."""
        return len(self.listener.connections)

    @property
    def closing_connections(self) -> int:
        """Connections that said goodbye and wait for the peer to close its end."""
        return self.listener.closing_connections

    async def start(self) -> None:
        """Start the backend, then listen; raises OSError if listening is impossible."""
        await self.backend.start()
        await self.listener.start()
        self._housekeeping()
        settings = self.settings
        if not is_loopback(settings.host) and not settings.tls and self.context.password is None:
            log.warning(
                "serving %s without TLS or a password: anyone who can reach this address"
                " can connect and read the traffic (see docs/SECURITY.md)",
                settings.host,
            )

    def set_max_clients(self, value: int) -> None:
        """Change the client limit while running; new connections see it at once.

        Lowering it disconnects nobody. The caller logs the change (see server/reload.py).
        """
        self.backend.set_max_clients(value)

    def _housekeeping(self) -> None:
        """Once a second: cut lingering connections off, forget clients that did not resume."""
        self.listener.cut_off_lingering()
        try:
            expired = self.backend.expire()
        except BackendUnavailableError:
            expired = []
        if isinstance(expired, Pending):
            expired.add_done_callback(_log_expired)
        else:
            _log_names(expired)
        self._housekeeper = asyncio.get_running_loop().call_later(
            HOUSEKEEPING_INTERVAL, self._housekeeping
        )

    async def shutdown(self) -> None:
        """Stop accepting, say goodbye to every client within the timeout, stop the backend."""
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        await self.listener.shutdown()
        await self.backend.close()
        log.info("server stopped")

    def abort_all(self) -> None:
        """Drop every connection now, unsent bytes and all (a second Ctrl-C)."""
        self.listener.abort_all()


def _log_names(expired: list[str]) -> None:
    for name in expired:
        log.info("%s did not come back in time", name)


def _log_expired(expired: Pending[list[str]]) -> None:
    try:
        _log_names(expired.result())
    except BackendUnavailableError:
        return
