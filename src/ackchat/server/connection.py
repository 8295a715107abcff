"""One client connection: bytes from the transport through the protocol core and back.

This is plumbing. The framer turns bytes into lines, the parser turns lines into
commands, the registry names the client and records its session, and the replies
module formats every answer. Here we only decide what to do with each command, write
the answers (one write per read, so pipelined lines cost one syscall), and apply the
limits that involve time and buffers: idle timeout and the cap on unsent output.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, cast

from ackchat.protocol import replies
from ackchat.protocol.commands import (
    Exit,
    Help,
    InvalidUtf8Error,
    Message,
    Status,
    parse_command,
)
from ackchat.protocol.framing import LineFramer, LineTooLong
from ackchat.registry import DisconnectReason, SessionRecord

if TYPE_CHECKING:
    from ackchat.server.listener import ChatServer

log = logging.getLogger("ackchat.server")

# A long reply (``status all``) is written this many lines at a time, between which the
# connection waits for the client to read when its write buffer is above the high mark.
STREAM_CHUNK_LINES = 256


def format_address(peername: object) -> str:
    """``host:port`` for IPv4, ``[host]:port`` for IPv6, ``unknown`` otherwise."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "unknown"


class ClientConnection(asyncio.Protocol):
    """The server side of one TCP connection, from accept to close."""

    def __init__(self, server: ChatServer) -> None:
        self._server = server
        self._settings = server.settings
        self._framer = LineFramer(server.settings.max_line_bytes)
        self._transport: asyncio.Transport | None = None
        self._record: SessionRecord | None = None
        self._session_ended = False
        self._closing = False
        self._writing_paused = False
        # A long reply being written piece by piece, and the lines read after it.
        self._stream: Iterator[str] | None = None
        self._held_lines: Iterator[bytes | LineTooLong] = iter(())
        self._idle_handle: asyncio.TimerHandle | None = None
        self._last_input = 0.0

    @property
    def name(self) -> str | None:
        """The client's name, or None if it was never admitted."""
        return self._record.name if self._record else None

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        self._server.opened(self)
        address = format_address(transport.get_extra_info("peername"))
        record = self._server.registry.admit(address, time.time())
        if record is None:
            log.info(
                "rejected %s: server full (%d clients)", address, self._server.registry.max_clients
            )
            self._closing = True
            transport.write(replies.line(replies.SERVER_FULL))
            transport.close()
            return
        self._record = record
        self._configure_socket(transport)
        high = max(self._settings.max_output_bytes // 4, 1)
        transport.set_write_buffer_limits(high=high)
        log.info("%s connected from %s", record.name, address)
        transport.write(replies.greeting(record.name))
        if self._settings.idle_timeout > 0:
            loop = asyncio.get_running_loop()
            self._last_input = loop.time()
            self._idle_handle = loop.call_later(self._settings.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._idle_handle is not None:
            self._last_input = asyncio.get_running_loop().time()
        self._handle(iter(self._framer.feed(data)))

    def eof_received(self) -> bool:
        # Returning False lets the transport close; connection_lost records the reason.
        return False

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._stream is not None and not self._closing:
            self._continue_stream()

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ConnectionResetError):
            reason = DisconnectReason.RESET
        elif exc is not None:
            reason = DisconnectReason.CONNECTION_ERROR
        else:
            reason = DisconnectReason.CLOSED_BY_PEER
        self._end_session(reason)
        self._stream = None
        self._server.closed(self)

    # Handling lines

    def _handle(self, lines: Iterator[bytes | LineTooLong]) -> None:
        """Answer each line in order, writing all the answers at once."""
        replies_out: list[bytes] = []
        for line in lines:
            if type(line) is not bytes:
                replies_out.append(replies.line_too_long(cast(LineTooLong, line)))
                continue
            try:
                command = parse_command(line)
            except InvalidUtf8Error:
                replies_out.append(replies.line(replies.INVALID_UTF8))
                continue
            if type(command) is Message:
                replies_out.append(replies.ack(command.text))
            elif type(command) is Status:
                self._write(replies_out)
                self._start_stream(self._status_lines(command.show_all), lines)
                return
            elif type(command) is Help:
                replies_out.append(replies.help_reply())
            elif type(command) is Exit:
                assert self._record is not None
                replies_out.append(replies.goodbye(self._record.name))
                self._write(replies_out)
                self.close(DisconnectReason.EXIT)
                return
        self._write(replies_out)

    def _status_lines(self, show_all: bool) -> Iterator[str]:
        recent = None if show_all else self._settings.status_recent
        return replies.status_lines(self._server.registry.snapshot(recent))

    def _write(self, chunks: list[bytes]) -> None:
        """Write answers, and drop the client if its unsent output passes the cap."""
        if not chunks:
            return
        assert self._transport is not None
        self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self._transport.get_write_buffer_size() > self._settings.max_output_bytes:
            log.warning(
                "%s is not reading its replies: over %d bytes unsent",
                self.name,
                self._settings.max_output_bytes,
            )
            self.abort(DisconnectReason.SLOW_CONSUMER)

    # Long replies, written as the client reads them

    def _start_stream(self, reply: Iterator[str], rest: Iterator[bytes | LineTooLong]) -> None:
        """Begin a long reply; lines after it wait, and reading pauses, until it is sent."""
        assert self._transport is not None
        self._stream = reply
        self._held_lines = rest
        if self._transport.is_reading():
            self._transport.pause_reading()
        self._continue_stream()

    def _continue_stream(self) -> None:
        assert self._transport is not None
        assert self._stream is not None
        # Not subject to the output cap: this output waits for the reader, never piles up.
        while not self._writing_paused:
            chunk = list(islice(self._stream, STREAM_CHUNK_LINES))
            if not chunk:
                break
            self._transport.write(replies.encode_lines(chunk))
        else:
            return
        self._stream = None
        held, self._held_lines = self._held_lines, iter(())
        self._handle(held)
        if self._stream is None and not self._closing:
            self._transport.resume_reading()

    # Timers

    def _check_idle(self) -> None:
        timeout = self._settings.idle_timeout
        loop = asyncio.get_running_loop()
        remaining = self._last_input + timeout - loop.time()
        if remaining > 0:
            self._idle_handle = loop.call_later(remaining, self._check_idle)
            return
        self._idle_handle = None
        log.info("%s idle for %g seconds", self.name, timeout)
        self.close(DisconnectReason.IDLE_TIMEOUT, replies.idle_timeout(timeout))

    # Ending the session

    def close(self, reason: DisconnectReason, farewell: bytes = b"") -> None:
        """End the session for ``reason``: send ``farewell``, flush, then close the socket.

        The slot is freed at once; the socket closes when the unsent bytes are out (the
        server aborts it after its shutdown timeout if the peer never reads them).
        """
        if self._closing:
            return
        assert self._transport is not None
        self._closing = True
        if farewell:
            self._transport.write(farewell)
        self._end_session(reason)
        self._transport.close()

    def abort(self, reason: DisconnectReason) -> None:
        """End the session for ``reason`` now, dropping whatever was not yet sent."""
        assert self._transport is not None
        self._closing = True
        self._end_session(reason)
        self._transport.abort()

    def _end_session(self, reason: DisconnectReason) -> None:
        """Record the departure once, with the first reason that applies, and stop timers."""
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self._record is None or self._session_ended:
            return
        self._session_ended = True
        self._server.registry.depart(self._record.name, reason, time.time())
        log.info("%s disconnected (%s)", self._record.name, reason)

    def _configure_socket(self, transport: asyncio.Transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is None or not self._settings.keepalive:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                sock.setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self._settings.keepalive_idle
                )
                sock.setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, self._settings.keepalive_interval
                )
                sock.setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_KEEPCNT, self._settings.keepalive_count
                )
        except OSError as error:
            log.debug("could not set keepalive on %s: %s", self.name, error)
