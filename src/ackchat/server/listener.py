"""The listening server: accepts connections, holds the registry, shuts down cleanly."""

from __future__ import annotations

import asyncio
import asyncio.trsock
import logging
import socket
import ssl
import time
from collections import Counter

from ackchat.admission import AddressPolicy
from ackchat.chat.hub import ChatHub
from ackchat.protocol import replies
from ackchat.registry import DisconnectReason, MemoryRegistry, Registry
from ackchat.server.connection import ClientConnection, format_address, is_loopback
from ackchat.settings import ServerSettings, SettingsError
from ackchat.tls import TlsSetupError, server_context

log = logging.getLogger("ackchat.server")

# Unsent bytes in a transport above which its writing counts as paused: long replies wait
# and chat lines queue where they can be counted (a quarter of the output cap if smaller).
WRITE_HIGH_WATER = 64 * 1024


class ChatServer:
    """An ackchat server on its TCP address(es), with its registry and open connections."""

    def __init__(self, settings: ServerSettings, registry: Registry | None = None) -> None:
        """Raises :class:`SettingsError` if the password or TLS files cannot be used."""
        self.settings = settings
        self.registry: Registry = registry or MemoryRegistry(
            settings.max_clients, settings.history_limit
        )
        self.admission = AddressPolicy(
            allow=settings.allow,
            deny=settings.deny,
            max_per_address=settings.max_per_address,
            connect_rate=settings.connect_rate,
            connect_burst=settings.connect_burst,
            exempt=settings.limit_exempt,
        )
        secret = settings.read_password()
        self.password: bytes | None = secret.encode() if secret else None
        try:
            self.tls = server_context(settings.tls_cert, settings.tls_key) if settings.tls else None
        except TlsSetupError as error:
            raise SettingsError(str(error)) from None
        # Connections turned away before they got a name, by reason (shown in status).
        self.refused: Counter[str] = Counter()
        self.hub = ChatHub(
            room_history=settings.room_history,
            direct_history=settings.direct_history,
            resume_grace=settings.resume_grace,
            resume_buffer=settings.resume_buffer,
        )
        # Chat deliveries that failed: slow readers cut off, messages dropped with them.
        self.chat_losses: Counter[str] = Counter()
        # Connections closing gracefully, with the time to abort them, oldest first; a
        # connection leaves as soon as it is closed, so nothing closed is kept alive.
        self._lingering: dict[ClientConnection, float] = {}
        self._housekeeper: asyncio.TimerHandle | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: set[ClientConnection] = set()
        # Set by shutdown(), which waits on it until the last connection is closed.
        self._all_closed: asyncio.Event | None = None
        # Every connection's high-water mark (see WRITE_HIGH_WATER).
        self.write_high_water = max(min(WRITE_HIGH_WATER, settings.max_output_bytes // 4), 1)

    @property
    def port(self) -> int:
        """The main port actually bound (useful when the settings asked for port 0)."""
        assert self._servers, "the server is not started"
        port: int = self._servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def tls_port(self) -> int | None:
        """The separate TLS port actually bound, if one was asked for."""
        if len(self._servers) < 2:
            return None
        port: int = self._servers[1].sockets[0].getsockname()[1]
        return port

    @property
    def open_connections(self) -> int:
        """Sockets open now, including refused ones still being closed."""
        return len(self._connections)

    @property
    def closing_connections(self) -> int:
        """Connections that said goodbye and wait for the peer to close its end."""
        return len(self._lingering)

    async def start(self) -> None:
        """Listen on the configured address(es); raises OSError if that is impossible."""
        settings = self.settings
        tls = self.tls
        main_is_tls = tls is not None and not settings.tls_port
        await self._listen(settings.port, tls if main_is_tls else None)
        if tls is not None and settings.tls_port:
            await self._listen(settings.tls_port, tls)
        self._housekeeping()
        if not is_loopback(settings.host) and tls is None and self.password is None:
            log.warning(
                "serving %s without TLS or a password: anyone who can reach this address"
                " can connect and read the traffic (see docs/SECURITY.md)",
                settings.host,
            )

    async def _listen(self, port: int, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: ClientConnection(self, loop),
            self.settings.host,
            port,
            backlog=self.settings.backlog,
            reuse_address=True,
            ssl=tls,
            ssl_handshake_timeout=(self.settings.line_timeout or None) if tls else None,
        )
        self._servers.append(server)
        for sock in server.sockets:
            self._configure_keepalive(sock)
        addresses = ", ".join(format_address(sock.getsockname()) for sock in server.sockets)
        log.info(
            "listening on %s%s (at most %d clients)",
            addresses,
            " with TLS" if tls else "",
            self.registry.max_clients,
        )

    def _configure_keepalive(self, sock: socket.socket | asyncio.trsock.TransportSocket) -> None:
        """TCP keepalive on the listening socket; Linux passes it on to accepted ones.

        Set once here rather than on every accepted socket: connecting stays cheap.
        """
        settings = self.settings
        options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(settings.keepalive))]
        if settings.keepalive and hasattr(socket, "TCP_KEEPIDLE"):
            options += [
                (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, settings.keepalive_idle),
                (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, settings.keepalive_interval),
                (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, settings.keepalive_count),
            ]
        try:
            for level, option, value in options:
                sock.setsockopt(level, option, value)
        except OSError as error:
            log.warning("could not set TCP keepalive: %s", error)

    def opened(self, connection: ClientConnection) -> None:
        """A connection's socket was accepted."""
        self._connections.add(connection)

    def closed(self, connection: ClientConnection) -> None:
        """A connection's socket is closed."""
        self._connections.discard(connection)
        self._lingering.pop(connection, None)
        if self._all_closed is not None and not self._connections:
            self._all_closed.set()

    def count_refusal(self, reason: str) -> None:
        """Count a connection or attempt turned away before it got a name."""
        self.refused[reason] += 1

    def count_chat(self, what: str, amount: int = 1) -> None:
        """Count a chat loss: a slow reader disconnected, messages dropped."""
        self.chat_losses[what] += amount

    def linger(self, connection: ClientConnection) -> None:
        """A connection is closing gracefully; abort it if it is still open after the
        shutdown timeout (one queue and one timer for all, not a timer each)."""
        self._lingering[connection] = time.monotonic() + self.settings.shutdown_timeout

    def _housekeeping(self) -> None:
        """Once a second: cut lingering connections off, forget clients that did not resume."""
        now = time.monotonic()
        lingering = self._lingering
        overdue = []
        for connection, deadline in lingering.items():
            if deadline > now:
                break
            overdue.append(connection)
        for connection in overdue:
            del lingering[connection]
            connection.abort(DisconnectReason.SERVER_SHUTDOWN)
        for name in self.hub.expire(time.time()):
            log.info("%s did not come back in time", name)
        self._housekeeper = asyncio.get_running_loop().call_later(1.0, self._housekeeping)

    def set_max_clients(self, value: int) -> None:
        """Change the client limit while running; new connections see it at once.

        Lowering it disconnects nobody. The caller logs the change (see server/reload.py).
        """
        self.registry.max_clients = value

    async def shutdown(self) -> None:
        """Stop accepting, tell every client, wait up to the shutdown timeout, then cut off."""
        for server in self._servers:
            server.close()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        farewell = replies.line(replies.SERVER_SHUTTING_DOWN)
        all_closed = self._all_closed = asyncio.Event()
        for connection in list(self._connections):
            connection.close(DisconnectReason.SERVER_SHUTDOWN, farewell)
        if not self._connections:
            all_closed.set()
        try:
            await asyncio.wait_for(all_closed.wait(), self.settings.shutdown_timeout)
        except TimeoutError:
            log.warning(
                "%d connections did not close within %g seconds; aborting them",
                len(self._connections),
                self.settings.shutdown_timeout,
            )
            self.abort_all()
        for server in self._servers:
            await server.wait_closed()
        log.info("server stopped")

    def abort_all(self) -> None:
        """Drop every connection now, unsent bytes and all (a second Ctrl-C)."""
        for connection in list(self._connections):
            connection.abort(DisconnectReason.SERVER_SHUTDOWN)
