"""One client connection: an asyncio protocol that hands everything to its session.

This is plumbing. The socket's events go to the :class:`ServerSession` (session.py),
which decides everything; what it asks for (writes, reading paused, closing, timers)
is done here with the transport and the event loop. Lingering closes go to the
listener's one queue rather than a timer each, so that connecting stays cheap.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from ackchat.protocol import replies
from ackchat.records import DisconnectReason
from ackchat.server.adapter import SessionAdapter
from ackchat.server.session import ServerSession

if TYPE_CHECKING:
    from collections.abc import Callable

    from ackchat.server.listener import Listener


def format_address(peername: object) -> str:
    """``host:port`` for IPv4, ``[host]:port`` for IPv6, ``unknown`` otherwise."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        return replies.host_port(str(peername[0]), peername[1])
    return "unknown"


class ClientConnection(SessionAdapter, asyncio.Protocol):
    """The server side of one TCP connection, from accept to close."""

    __slots__ = ("_transport", "write")

    def __init__(self, listener: Listener, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(listener, loop)
        self._transport: asyncio.Transport | None = None
        # The transport's own write, handed to the session (see connection_made).
        self.write: Callable[[bytes], None]

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's transport (None before it is made)."""
        return self._transport

    # asyncio.Protocol callbacks: each goes to the session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        # The session writes through the transport's own method: no call in between.
        self.write = transport.write
        listener = self._listener
        listener.opened(self)
        transport.set_write_buffer_limits(high=listener.write_high_water)
        peername = transport.get_extra_info("peername")
        host = str(peername[0]) if isinstance(peername, tuple) else ""
        self._session = session = ServerSession(
            listener.context, self, host, format_address(peername)
        )
        session.start()
        if listener.drain_notice is not None:
            # Accepted just before the listening stopped for a drain.
            session.drain(listener.drain_notice)

    def data_received(self, data: bytes) -> None:
        self._session.data_received(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        # Returning False lets the transport close; connection_lost records the reason.
        return False

    def pause_writing(self) -> None:
        self._session.pause_writing()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self._session.resume_writing()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        session = self._session
        if session is not None:
            session.connection_lost(exc)
        self._cancel_timers()
        self._listener.closed(self)

    # What the session asks for (SessionIO)

    def write_buffer_size(self) -> int:
        assert self._transport is not None
        return self._transport.get_write_buffer_size()

    def pause_reading(self) -> None:
        assert self._transport is not None
        if self._transport.is_reading():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        assert self._transport is not None
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self) -> None:
        """FIN after the unsent bytes, then read and drop input until the peer's FIN."""
        transport = self._transport
        assert transport is not None
        if not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:
            transport.abort()
            return
        if not transport.is_reading():
            transport.resume_reading()

    def abort(self) -> None:
        assert self._transport is not None
        self._transport.abort()

    def cut_off(self) -> None:
        """End the session now, unsent bytes and all (a second Ctrl-C)."""
        if self._session is not None:
            self._session.abort(DisconnectReason.SERVER_SHUTDOWN)
        elif self._transport is not None:
            self._transport.abort()
