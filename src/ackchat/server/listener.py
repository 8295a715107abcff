"""The listening server: accepts connections, holds the registry, shuts down cleanly."""

from __future__ import annotations

import asyncio
import logging

from ackchat.protocol import replies
from ackchat.registry import DisconnectReason, MemoryRegistry, Registry
from ackchat.server.connection import ClientConnection, format_address
from ackchat.settings import ServerSettings

log = logging.getLogger("ackchat.server")


class ChatServer:
    """An ackchat server on one TCP address, with its registry and open connections."""

    def __init__(self, settings: ServerSettings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry: Registry = registry or MemoryRegistry(
            settings.max_clients, settings.history_limit
        )
        self._server: asyncio.Server | None = None
        self._connections: set[ClientConnection] = set()
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    @property
    def port(self) -> int:
        """The port actually bound (useful when the settings asked for port 0)."""
        assert self._server is not None, "the server is not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def open_connections(self) -> int:
        """Sockets open now, including rejected ones still being closed."""
        return len(self._connections)

    async def start(self) -> None:
        """Listen on the configured address; raises OSError if that is impossible."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self),
            self.settings.host,
            self.settings.port,
            backlog=self.settings.backlog,
            reuse_address=True,
        )
        addresses = ", ".join(format_address(sock.getsockname()) for sock in self._server.sockets)
        log.info("listening on %s (at most %d clients)", addresses, self.registry.max_clients)

    def opened(self, connection: ClientConnection) -> None:
        """A connection's socket was accepted."""
        self._connections.add(connection)
        self._all_closed.clear()

    def closed(self, connection: ClientConnection) -> None:
        """A connection's socket is closed."""
        self._connections.discard(connection)
        if not self._connections:
            self._all_closed.set()

    def set_max_clients(self, value: int) -> None:
        """Change the client limit while running; new connections see it at once."""
        old = self.registry.max_clients
        self.registry.max_clients = value
        if old != value:
            log.info("max_clients changed from %d to %d", old, value)

    async def shutdown(self) -> None:
        """Stop accepting, tell every client, wait up to the shutdown timeout, then cut off."""
        if self._server is not None:
            self._server.close()
        farewell = replies.line(replies.SERVER_SHUTTING_DOWN)
        for connection in list(self._connections):
            connection.close(DisconnectReason.SERVER_SHUTDOWN, farewell)
        try:
            await asyncio.wait_for(self._all_closed.wait(), self.settings.shutdown_timeout)
        except TimeoutError:
            log.warning(
                "%d connections did not close within %g seconds; aborting them",
                len(self._connections),
                self.settings.shutdown_timeout,
            )
            self.abort_all()
        if self._server is not None:
            await self._server.wait_closed()
        log.info("server stopped")

    def abort_all(self) -> None:
        """Drop every connection now, unsent bytes and all (a second Ctrl-C)."""
        for connection in list(self._connections):
            connection.abort(DisconnectReason.SERVER_SHUTDOWN)
