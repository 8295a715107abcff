"""One connection to a server: connect, send lines, show the server's lines as they come.

This is the asyncio plumbing around :class:`~ackchat.client.core.ReplyTracker`; the
piped and interactive clients decide what to send and when. Every failure becomes a
:class:`~ackchat.client.errors.ClientError` with a sentence for the user.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from ackchat.client.core import (
    EndOfBlock,
    Event,
    Greeting,
    ReplyTracker,
    ServerFull,
    UnexpectedFirstLine,
)
from ackchat.client.errors import (
    EXIT_CONNECT_FAILED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SERVER_CLOSED,
    EXIT_SERVER_FULL,
    SERVER_CLOSED,
    ClientError,
)
from ackchat.settings import ClientSettings

# A security limit: a server line longer than this ends the session instead of
# growing the buffer without bound. It is far above any reply of a server whose
# max_line_bytes is left near its default.
MAX_SERVER_LINE_BYTES = 16 * 1024 * 1024


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _connect_failure(error: OSError) -> str:
    """Why connecting failed, in words for the user."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused; is the server running?"
    if error.strerror:
        return f"{error.strerror[0].lower()}{error.strerror[1:]}."
    # asyncio tried several addresses of the host, which failed in different ways.
    return "no address of the host accepted the connection; is the server running?"


class Session:
    """A connected, greeted client: lines go out, the server's lines come in as events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.tracker = ReplyTracker()
        self._answered = asyncio.Event()

    @classmethod
    async def open(cls, settings: ClientSettings) -> tuple[Session, Greeting]:
        """Connect and read the greeting's first line, each within ``connect_timeout``.

        Returns the session and the greeting, whose block's other lines the relay shows.
        """
        address = format_address(settings.host, settings.port)
        timeout = settings.connect_timeout
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(settings.host, settings.port, limit=MAX_SERVER_LINE_BYTES),
                timeout,
            )
        except TimeoutError:
            raise ClientError(
                f"cannot connect to {address}: no answer within {timeout:g} seconds.",
                EXIT_CONNECT_FAILED,
            ) from None
        except OSError as error:
            raise ClientError(
                f"cannot connect to {address}: {_connect_failure(error)}", EXIT_CONNECT_FAILED
            ) from None
        session = cls(reader, writer)
        try:
            greeting = await asyncio.wait_for(session._greeting(address), timeout)
        except TimeoutError:
            await session.close()
            raise ClientError(
                f"{address} accepted the connection but sent no greeting within"
                f" {timeout:g} seconds.",
                EXIT_CONNECT_FAILED,
            ) from None
        except BaseException:
            await session.close()
            raise
        return session, greeting

    async def _greeting(self, address: str) -> Greeting:
        """The greeting, or the error that stands for any other first line."""
        event = await self._receive()
        if event is None:
            raise ClientError(
                "the server closed the connection without a greeting.", EXIT_SERVER_CLOSED
            )
        if isinstance(event, ServerFull):
            raise ClientError(event.text, EXIT_SERVER_FULL)
        if isinstance(event, UnexpectedFirstLine):
            raise ClientError(f"unexpected greeting from {address}: {event.text!r}", EXIT_ERROR)
        assert isinstance(event, Greeting), event
        return event

    async def send(self, line: bytes) -> None:
        """Send one line (without its line ending); its reply becomes due."""
        self.tracker.sent(line)
        self._answered.clear()
        self._writer.write(line + b"\n")
        # A lost connection is reported by the reader, which sees the stream end.
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def replies_done(self) -> None:
        """Wait until every reply due so far has been received in full."""
        await self._answered.wait()

    async def relay(self, show: Callable[[str], None]) -> None:
        """Show the server's lines as they arrive (block ends hidden), until it closes."""
        while (event := await self._receive()) is not None:
            if not isinstance(event, EndOfBlock):
                show(event.text)
            if not self.tracker.awaiting_reply:
                self._answered.set()

    async def converse(self, talk: Awaitable[None], show: Callable[[str], None]) -> int:
        """Run ``talk``, which sends lines up to ``exit``, while relaying the server's lines.

        Returns the exit code; raises :class:`ClientError` if the server closes first.
        """
        relaying = asyncio.ensure_future(self.relay(show))
        talking = asyncio.ensure_future(talk)
        try:
            done, _ = await asyncio.wait({relaying, talking}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            relaying.cancel()
            talking.cancel()
            await asyncio.wait({relaying, talking})
        for task in done:
            task.result()
        if talking in done or self.tracker.exit_sent:
            return EXIT_OK
        raise ClientError(SERVER_CLOSED, EXIT_SERVER_CLOSED)

    async def close(self) -> None:
        """Close the connection and wait until it is closed."""
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def _receive(self) -> Event | None:
        """The event for the next line from the server, or None once it has closed."""
        try:
            data = await self._reader.readline()
        except ValueError:
            raise ClientError(
                f"the server sent a line longer than {MAX_SERVER_LINE_BYTES} bytes.", EXIT_ERROR
            ) from None
        except ConnectionError:
            return None
        if not data:
            return None
        return self.tracker.received(data.removesuffix(b"\n").decode(errors="replace"))
