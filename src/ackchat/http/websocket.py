"""``GET /ws``: the line protocol over WebSocket, one text frame per line.

A :class:`WebSocketConnection` is the second adapter over the sans-I/O
:class:`~ackchat.server.session.ServerSession`, beside the TCP one (server/connection.py).
The session decides everything as it does for TCP (names, rooms, limits, the password,
sanitising, slow readers), and the connection joins the listener's set, so it counts
against the same ``max_clients`` and a drain, a shutdown or a kick reaches it.

Frames in: a text frame is one line (a line end at its end may be left out; line ends
inside it make several lines, as the same bytes over TCP would). A binary frame is
taken as the bytes of a line, so invalid UTF-8 gets the TCP answer. Frames up to
:data:`FRAME_FACTOR` times ``max_line_bytes`` are framed like TCP input (a longer line
is answered with the same error and the session goes on); a larger one makes aiohttp
close the WebSocket with 1009 (message too big). Frames out: each line the session
writes is one text frame, without its line end. Compression is off: lines are short,
and compressing what mixes secrets with attacker-chosen text leaks them (CRIME).

What the session asks for, and what it is told, mapped onto aiohttp's
``WebSocketResponse`` (the TCP adapter's equivalent in brackets):

- ``write(data)``: each line becomes a frame, queued here; a sender task hands them in
  order to ``send_str``, which writes to the socket and waits for it to drain when the
  socket's own buffer is full (``transport.write``).
- ``write_buffer_size()``: the bytes queued here plus the socket's buffer (the
  transport's buffer).
- ``pause_writing()`` is sent to the session when the bytes queued here pass the
  listener's ``write_high_water``, ``resume_writing()`` when the sender has brought them
  under a quarter of it (the transport's high- and low-water marks). The socket's own
  buffer need not count: while it is full, ``send_str`` waits, so the queue here grows.
- ``pause_reading()``: the reader stops taking frames from ``receive()``; aiohttp queues
  up to 128 KiB more, then pauses the socket, so the peer's TCP window closes
  (``transport.pause_reading``). ``resume_reading()`` takes frames again.
- ``close()``: the queued frames, then a close frame (1000), then frames are read and
  dropped until the peer's close frame, within ``shutdown_timeout`` (FIN after the unsent
  bytes, then read and drop until the peer's FIN).
- ``abort()``: the socket under the WebSocket is aborted, the queue dropped (the same).
- Timers: ``call_later``, and lingering closes on the listener's queue (the same).
- ``connection_lost(error)``: the peer's close frame or a TCP FIN give None (``closed by
  peer``), a reset gives ``ConnectionResetError``, a heartbeat unanswered (dead peers,
  the counterpart of TCP keepalive: a ping after ``keepalive_idle`` seconds of silence)
  gives its error (asyncio's ``connection_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from aiohttp import WSMsgType, web

from ackchat.protocol import replies
from ackchat.records import DisconnectReason
from ackchat.server.adapter import SessionAdapter
from ackchat.server.connection import format_address
from ackchat.server.listener import Listener
from ackchat.server.session import ServerSession

# Frames up to this many times max_line_bytes are read and framed like TCP input.
FRAME_FACTOR = 2


def websocket_response(listener: Listener) -> web.WebSocketResponse:
    """The WebSocket for one client, configured from the server's settings."""
    settings = listener.settings
    return web.WebSocketResponse(
        timeout=settings.shutdown_timeout,
        heartbeat=float(settings.keepalive_idle) if settings.keepalive else None,
        compress=False,
        max_msg_size=FRAME_FACTOR * settings.max_line_bytes + 2,
    )


class WebSocketConnection(SessionAdapter):
    """The server side of one WebSocket, from the upgrade to the close."""

    def __init__(
        self, listener: Listener, ws: web.WebSocketResponse, transport: asyncio.Transport
    ) -> None:
        super().__init__(listener, asyncio.get_running_loop())
        self._ws = ws
        self._transport: asyncio.Transport | None = transport
        # What the session wrote and the sender has not handed to aiohttp yet.
        self._outbox: deque[bytes] = deque()
        self._outbox_bytes = 0
        self._writing_paused = False
        self._high_water = listener.write_high_water
        # Set when the sender has something to do: frames to send, a close, the end.
        self._wake = asyncio.Event()
        # Cleared while the session has paused reading.
        self._readable = asyncio.Event()
        self._readable.set()
        # close() was asked for: the sender sends what is queued, then the close frame.
        self._closing = False
        # The connection is over (the peer went, or it was aborted): the sender stops.
        self._gone = False
        # How the connection was lost, for the session (None: the peer closed it).
        self._error: Exception | None = None
        self._sender: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def transport(self) -> asyncio.Transport | None:
        """The socket's transport under the WebSocket (None once it is gone)."""
        return self._transport

    async def run(self) -> None:
        """Serve the client until the WebSocket is closed, by either side."""
        listener = self._listener
        assert self._transport is not None
        peername = self._transport.get_extra_info("peername")
        host = str(peername[0]) if isinstance(peername, tuple) else ""
        self._session = session = ServerSession(
            listener.context, self, host, format_address(peername)
        )
        listener.opened(self)
        self._sender = asyncio.ensure_future(self._send_frames())
        self._reader = asyncio.ensure_future(self._read_frames())
        try:
            session.start()
            if listener.drain_notice is not None:
                # Upgraded just as the server began to drain, or to stop.
                session.drain(listener.drain_notice)
            elif not listener.accepting:
                session.close(
                    DisconnectReason.SERVER_SHUTDOWN, replies.line(replies.SERVER_SHUTTING_DOWN)
                )
            await asyncio.wait({self._sender})
        except asyncio.CancelledError:
            # The HTTP side is stopping under us (its server shut down first otherwise).
            session.abort(DisconnectReason.SERVER_SHUTDOWN)
            raise
        finally:
            self._gone = True
            for task in (self._sender, self._reader):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({self._sender, self._reader})
            session.connection_lost(self._error)
            self._cancel_timers()
            self._transport = None
            listener.closed(self)

    async def _read_frames(self) -> None:
        """Hand each frame to the session as a line, until the peer closes or vanishes."""
        ws = self._ws
        session = self._session
        assert session is not None
        while True:
            await self._readable.wait()
            message = await ws.receive()
            if message.type is WSMsgType.TEXT:
                data = message.data.encode()
            elif message.type is WSMsgType.BINARY:
                data = message.data
            else:
                if message.type is WSMsgType.ERROR and isinstance(message.data, Exception):
                    self._error = message.data
                break
            session.data_received(data if data.endswith(b"\n") else data + b"\n")
        self._gone = True
        self._wake.set()

    async def _send_frames(self) -> None:
        """Send the queued lines as frames in order; after close(), the close handshake.

        The session writes whole lines, each ending in a line end.
        """
        ws = self._ws
        try:
            while not self._gone:
                if self._outbox:
                    data = self._outbox[0]
                    for text in data.decode(errors="replace").split("\n")[:-1]:
                        await ws.send_str(text)
                    self._outbox.popleft()
                    self._outbox_bytes -= len(data)
                    self._check_resume_writing()
                    continue
                if self._closing:
                    await self._close_handshake()
                    return
                self._wake.clear()
                await self._wake.wait()
        except ConnectionError as error:
            self._error = error

    async def _close_handshake(self) -> None:
        """The close frame, then input dropped until the peer's close frame (aiohttp's
        ``close`` reads it, bounded by ``shutdown_timeout``)."""
        reader = self._reader
        assert reader is not None
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await self._ws.close()

    def _check_resume_writing(self) -> None:
        """Tell the session it may write again once the queue here is low enough."""
        if self._writing_paused and self._outbox_bytes <= self._high_water // 4:
            self._writing_paused = False
            assert self._session is not None
            self._session.resume_writing()

    # What the session asks for (SessionIO)

    def write(self, data: bytes) -> None:
        """Queue ``data``'s lines, each to go as one frame."""
        if self._gone or self._closing:
            return
        self._outbox.append(data)
        self._outbox_bytes += len(data)
        self._wake.set()
        if not self._writing_paused and self._outbox_bytes > self._high_water:
            self._writing_paused = True
            assert self._session is not None
            self._session.pause_writing()

    def write_buffer_size(self) -> int:
        """The bytes queued here and in the socket's buffer."""
        transport = self._transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return self._outbox_bytes + buffered

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def close(self) -> None:
        """The queued frames, then the close handshake."""
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        """Close the socket now, dropping what is queued."""
        self._gone = True
        self._outbox.clear()
        self._outbox_bytes = 0
        if self._transport is not None:
            self._transport.abort()
        for task in (self._sender, self._reader):
            if task is not None:
                task.cancel()

    def cut_off(self) -> None:
        """End the session now, unsent bytes and all (a second Ctrl-C)."""
        if self._session is not None:
            self._session.abort(DisconnectReason.SERVER_SHUTDOWN)
