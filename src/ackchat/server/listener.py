"""The listening sockets: accepting connections, keeping them, closing them all.

A :class:`Listener` binds the configured address (and the TLS port beside it), makes a
:class:`ClientConnection` for each accepted socket, keeps the open ones and the ones
closing gracefully, cuts off those that linger past their bound, and at shutdown tells
every client and waits for them within the shutdown timeout. A drain (for a rolling
restart) stops accepting and tells every client to reconnect, then waits for them to
leave; with ``reuse_port`` several servers on one host share the port (SO_REUSEPORT), so
the kernel hands new connections to the others meanwhile.

Connections that come another way (the WebSocket adapter of the HTTP side) join the
same set through :meth:`Listener.opened` and :meth:`Listener.closed`: they count in
the same limits, and a drain, a shutdown or a kick reaches them as it reaches TCP ones.
"""

from __future__ import annotations

import asyncio
import asyncio.trsock
import logging
import socket
import ssl
import time
from typing import Protocol

from ackchat.protocol import replies
from ackchat.server.connection import ClientConnection, format_address
from ackchat.server.delivery import DeliveryFlusher
from ackchat.server.session import ServerSession, SessionContext

log = logging.getLogger("ackchat.server")

# Unsent bytes in a transport above which its writing counts as paused: long replies wait
# and chat lines queue where they can be counted (a quarter of the output cap if smaller).
WRITE_HIGH_WATER = 64 * 1024


class Connection(Protocol):
    """What the listener asks of an open connection, whatever carries it (TCP, WebSocket)."""

    @property
    def name(self) -> str | None:
        """The client's name, or None while it has none."""

    @property
    def session(self) -> ServerSession | None:
        """The connection's session (None before it is made)."""

    @property
    def transport(self) -> asyncio.Transport | None:
        """The socket's transport (None before it is made, or once it is gone)."""

    def lingered(self) -> None:
        """Closing took longer than the bound: the session aborts the connection."""

    def drain(self, notice: bytes) -> None:
        """The server drains: the session tells its client to reconnect elsewhere."""

    def shut_down(self, farewell: bytes) -> None:
        """The server is stopping: end the session with ``farewell``."""

    def cut_off(self) -> None:
        """End the session now, unsent bytes and all (a second Ctrl-C)."""


class Listener:
    """The server's listening sockets and its open connections."""

    def __init__(self, context: SessionContext, tls: ssl.SSLContext | None) -> None:
        self.context = context
        self.settings = settings = context.settings
        self._tls = tls
        self._servers: list[asyncio.Server] = []
        # The ports bound, main one first: still known once listening has stopped.
        self._ports: list[int] = []
        # What every client is told during a drain (None: not draining); a connection
        # accepted just before the listening stopped is told when it is made.
        self.drain_notice: bytes | None = None
        # False once the listening stopped (drain, shutdown): other ways in refuse too.
        self.accepting = True
        self._connections: set[Connection] = set()
        # Connections closing gracefully, with the time to abort them, oldest first; a
        # connection leaves as soon as it is closed, so nothing closed is kept alive.
        self._lingering: dict[Connection, float] = {}
        # Set by shutdown(), which waits on it until the last connection is closed.
        self._all_closed: asyncio.Event | None = None
        # Chat lines for many connections, written together once per loop iteration.
        self.deliveries = DeliveryFlusher()
        # Every connection's high-water mark (see WRITE_HIGH_WATER).
        self.write_high_water = max(min(WRITE_HIGH_WATER, settings.max_output_bytes // 4), 1)

    @property
    def port(self) -> int:
        """The main port actually bound (useful when the settings asked for port 0)."""
        assert self._ports, "the server is not started"
        return self._ports[0]

    @property
    def tls_port(self) -> int | None:
        """The separate TLS port actually bound, if one was asked for."""
        return self._ports[1] if len(self._ports) > 1 else None

    @property
    def connections(self) -> frozenset[Connection]:
        """Sockets open now, including refused ones still being closed."""
        return frozenset(self._connections)

    @property
    def closing_connections(self) -> int:
        """Connections that said goodbye and wait for the peer to close its end."""
        return len(self._lingering)

    async def start(self) -> None:
        """Listen on the configured address(es); raises OSError if that is impossible."""
        settings = self.settings
        tls = self._tls
        main_is_tls = tls is not None and not settings.tls_port
        await self._listen(settings.port, tls if main_is_tls else None)
        if tls is not None and settings.tls_port:
            await self._listen(settings.tls_port, tls)

    async def _listen(self, port: int, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: ClientConnection(self, loop),
            self.settings.host,
            port,
            backlog=self.settings.backlog,
            reuse_address=True,
            reuse_port=self.settings.reuse_port,
            ssl=tls,
            ssl_handshake_timeout=(self.settings.line_timeout or None) if tls else None,
        )
        self._servers.append(server)
        self._ports.append(server.sockets[0].getsockname()[1])
        for sock in server.sockets:
            self._configure_keepalive(sock)
        addresses = ", ".join(format_address(sock.getsockname()) for sock in server.sockets)
        log.info(
            "listening on %s%s (at most %d clients)",
            addresses,
            " with TLS" if tls else "",
            self.context.backend.max_clients,
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

    def opened(self, connection: Connection) -> None:
        """A connection's socket was accepted."""
        self._connections.add(connection)

    def closed(self, connection: Connection) -> None:
        """A connection's socket is closed."""
        self._connections.discard(connection)
        self._lingering.pop(connection, None)
        if self._all_closed is not None and not self._connections:
            self._all_closed.set()

    def linger(self, connection: Connection, bound: float) -> None:
        """A connection is closing gracefully; cut it off if it is still open after
        ``bound`` seconds (one queue and one timer for all, not a timer each)."""
        self._lingering[connection] = time.monotonic() + bound

    def unlinger(self, connection: Connection) -> None:
        """A closing connection is closed after all, or was cut off."""
        self._lingering.pop(connection, None)

    def cut_off_lingering(self) -> None:
        """Cut off the connections that have lingered past their bound."""
        now = time.monotonic()
        lingering = self._lingering
        overdue = []
        for connection, deadline in lingering.items():
            if deadline > now:
                break
            overdue.append(connection)
        for connection in overdue:
            del lingering[connection]
            connection.lingered()

    async def drain(self, notice: bytes, bound: float) -> bool:
        """Stop accepting, tell every client ``notice``, and wait for them to leave.

        True once the last connection closed, False if some are still open after
        ``bound`` seconds: :meth:`shutdown` closes those.
        """
        self._stop_listening()
        self.drain_notice = notice
        all_closed = self._all_closed = asyncio.Event()
        for connection in list(self._connections):
            connection.drain(notice)
        if not self._connections:
            return True
        try:
            await asyncio.wait_for(all_closed.wait(), bound)
        except TimeoutError:
            return False
        return True

    def _stop_listening(self) -> None:
        """Close the listening sockets: new connections go elsewhere (or are refused)."""
        self.accepting = False
        for server in self._servers:
            server.close()

    async def shutdown(self) -> None:
        """Stop accepting, tell every client, wait up to the shutdown timeout, then cut off."""
        self._stop_listening()
        farewell = replies.line(replies.SERVER_SHUTTING_DOWN)
        all_closed = self._all_closed = asyncio.Event()
        for connection in list(self._connections):
            connection.shut_down(farewell)
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

    def abort_all(self) -> None:
        """Drop every connection now, unsent bytes and all (a second Ctrl-C)."""
        for connection in list(self._connections):
            connection.cut_off()
