"""One connection to a server: connect, sign in, send lines, show the server's lines.

This is the asyncio plumbing around :class:`~ackchat.client.core.ReplyTracker`; the
piped and interactive clients decide what to send and when, and where a password comes
from. Every failure becomes a :class:`~ackchat.client.errors.ClientError` with a
sentence for the user. The password is only ever written to the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ackchat.client.core import (
    AuthFailed,
    ChatLine,
    Draining,
    EndOfBlock,
    Event,
    Farewell,
    Goodbye,
    Greeting,
    PasswordRequired,
    Refused,
    ReplyLine,
    ReplyTracker,
    ServerFull,
    UnexpectedFirstLine,
    WrongPassword,
)
from ackchat.client.errors import (
    EXIT_AUTH_FAILED,
    EXIT_CONNECT_FAILED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SERVER_CLOSED,
    EXIT_SERVER_FULL,
    EXIT_USAGE,
    SERVER_CLOSED,
    ClientError,
    ConnectionLostError,
    ServerDrainingError,
)
from ackchat.protocol.replies import ERROR_PREFIX, host_port
from ackchat.settings import ClientSettings, SettingsError
from ackchat.tls import TlsSetupError, client_context

# A security limit: a server line longer than this ends the session instead of
# growing the buffer without bound. It is far above any reply of a server whose
# max_line_bytes is left near its default.
MAX_SERVER_LINE_BYTES = 16 * 1024 * 1024

# How long closing may wait for the server (a TLS close waits for its close_notify).
CLOSE_TIMEOUT = 2.0

_T = TypeVar("_T")

# Shows one event from the server (every kind but the end of a block).
Show = Callable[[Event], None]

# Gives the password when the server asks: with the server's complaint about the last
# one (None the first time). It may raise ClientError, or any exception to give up.
PasswordSource = Callable[[WrongPassword | None], Awaitable[str]]

NO_PASSWORD = "the server asks for a password; give --password-file FILE or ACKCHAT_PASSWORD."

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: the
# certificate is for another name or address.
NAME_MISMATCH = (62, 64)


def configured_password(settings: ClientSettings) -> str:
    """The password from the settings or its file ("" for none), read before connecting."""
    try:
        secret = settings.read_password()
    except SettingsError as error:
        raise ClientError(str(error), EXIT_USAGE) from None
    return secret


def configured_only(password: str) -> PasswordSource:
    """Give ``password`` once: without one, or once it is wrong, the client gives up."""

    async def give(complaint: WrongPassword | None) -> str:
        if complaint is not None:
            # The same password again cannot fare better: stop at the server's answer.
            raise ClientError(complaint.text.removeprefix(ERROR_PREFIX), EXIT_AUTH_FAILED)
        if not password:
            raise ClientError(NO_PASSWORD, EXIT_AUTH_FAILED)
        return password

    return give


def _tls_context(settings: ClientSettings) -> ssl.SSLContext | None:
    """The TLS context to connect with, or None for plain text."""
    if not settings.tls:
        return None
    try:
        return client_context(settings.ca or None, settings.insecure)
    except TlsSetupError as error:
        raise ClientError(f"{error}.", EXIT_USAGE) from None


def _tls_failure(error: ssl.SSLError, host: str) -> str:
    """Why the TLS handshake failed, in words for the user."""
    if isinstance(error, ssl.SSLCertVerificationError):
        if error.verify_code in NAME_MISMATCH:
            return (
                f"the server's TLS certificate is not valid for {host} ({error.verify_message});"
                " connect to a name the certificate was issued for."
            )
        return (
            "the server's TLS certificate could not be verified"
            f" (certificate verify failed: {error.verify_message}); use --ca FILE to trust its CA."
        )
    reason = (error.reason or "handshake failed").lower().replace("_", " ")
    return f"the TLS handshake failed ({reason}); does the server serve TLS on this port?"


def _connect_failure(error: OSError, tls: bool) -> str:
    """Why connecting failed, in words for the user."""
    if tls and isinstance(error, ConnectionResetError | BrokenPipeError):
        return "the connection was closed during the TLS handshake; does the server serve TLS?"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused; is the server running?"
    if error.strerror:
        return f"{error.strerror[0].lower()}{error.strerror[1:]}."
    # asyncio tried several addresses of the host, which failed in different ways.
    return "no address of the host accepted the connection; is the server running?"


def connect_error(
    error: OSError, address: str, timeout: float | None, tls_host: str | None
) -> ClientError:
    """The error for a connection to ``address`` that failed (``ackchat bench`` says it too).

    ``timeout`` is the client's own limit, None if it has none (the system timed out).
    """
    if isinstance(error, TimeoutError):
        reason = (
            "no answer; the system gave up waiting."
            if timeout is None
            else f"no answer within {timeout:g} seconds."
        )
    elif isinstance(error, ssl.SSLError) and tls_host is not None:
        reason = _tls_failure(error, tls_host)
    else:
        reason = _connect_failure(error, tls_host is not None)
    return ClientError(f"cannot connect to {address}: {reason}", EXIT_CONNECT_FAILED)


class Session:
    """A connection to a server: lines go out, the server's lines come in as events."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: ClientSettings,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._settings = settings
        self._address = host_port(settings.host, settings.port)
        self.tracker = ReplyTracker()
        self._answered = asyncio.Event()
        # Set once the server drains and no reply is due any more: time to go elsewhere.
        self._leave = asyncio.Event()
        self._collected: list[Event] | None = None
        self._errors_shown = True

    @classmethod
    async def connect(cls, settings: ClientSettings) -> Session:
        """Connect (and shake hands for TLS) within ``connect_timeout`` (0: no limit)."""
        address = host_port(settings.host, settings.port)
        timeout = settings.connect_limit
        context = _tls_context(settings)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    settings.host,
                    settings.port,
                    limit=MAX_SERVER_LINE_BYTES,
                    ssl=context,
                    server_hostname=settings.host if context is not None else None,
                ),
                timeout,
            )
        except OSError as error:
            tls_host = settings.host if context is not None else None
            raise connect_error(error, address, timeout, tls_host) from None
        return cls(reader, writer, settings)

    async def greet(self, password: PasswordSource) -> Greeting:
        """Read up to the greeting's first line, answering password requests from ``password``.

        Each line from the server must come within ``connect_timeout`` (0: no limit); time
        spent getting the password does not count, but the server's closing meanwhile ends
        the wait.
        Returns the greeting, whose block's other lines the relay shows.
        """
        while True:
            event = await self._before_greeting()
            if isinstance(event, Greeting):
                return event
            if not isinstance(event, PasswordRequired | WrongPassword):
                raise self._failure(event)
            complaint = event if isinstance(event, WrongPassword) else None
            secret = await self._unless_closed(password(complaint))
            if "\n" in secret or "\r" in secret:
                raise ClientError("the password must be a single line.", EXIT_USAGE)
            self.tracker.sent_password()
            self._writer.write(b"auth " + secret.encode() + b"\n")

    async def _before_greeting(self) -> Event | None:
        """The next event before the greeting, within ``connect_timeout`` (0: no limit)."""
        timeout = self._settings.connect_limit
        try:
            return await asyncio.wait_for(self._receive(), timeout)
        except TimeoutError:
            hint = "" if self._settings.tls else "; if it serves TLS, connect with --tls"
            raise ClientError(
                f"{self._address} accepted the connection but sent no greeting within"
                f" {timeout:g} seconds{hint}.",
                EXIT_CONNECT_FAILED,
            ) from None

    async def _unless_closed(self, asking: Awaitable[str]) -> str:
        """The password, unless the server speaks (to close) before it is given."""
        answer = asyncio.ensure_future(asking)
        watch = asyncio.ensure_future(self._receive())
        try:
            await asyncio.wait({answer, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            answer.cancel()
            watch.cancel()
            await asyncio.wait({answer, watch})
        if watch.done() and not watch.cancelled():
            raise self._failure(watch.result())  # Sending the password would be too late.
        return answer.result()

    def _failure(self, event: Event | None) -> ClientError:
        """The error for a line (or the close) that stands in for the greeting."""
        if event is None:
            return ClientError(
                "the server closed the connection without a greeting.", EXIT_SERVER_CLOSED
            )
        if isinstance(event, ServerFull):
            return ClientError(event.text, EXIT_SERVER_FULL)
        if isinstance(event, Refused):
            return ClientError(event.text, EXIT_CONNECT_FAILED)
        if isinstance(event, AuthFailed):
            return ClientError(event.text, EXIT_AUTH_FAILED)
        if isinstance(event, Farewell):
            return ClientError(event.text, EXIT_SERVER_CLOSED)
        if isinstance(event, Draining):
            return ServerDrainingError(event.redirect)
        kind = "greeting" if isinstance(event, UnexpectedFirstLine) else "line"
        text = "." if isinstance(event, EndOfBlock) else event.text
        return ClientError(f"unexpected {kind} from {self._address}: {text!r}", EXIT_ERROR)

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

    async def ask(self, line: bytes, *, show_error: bool = True) -> list[Event]:
        """Send one line while no reply is due, and return its reply once complete.

        The reply's events are shown by the relay as well, which must be running; with
        ``show_error`` False, a reply that is an ``ERROR`` line is not, so that the caller
        can say in its own words what the refusal means, once.
        """
        if self.tracker.awaiting_reply:
            raise ValueError("ask only when no reply is due")
        collected: list[Event] = []
        self._collected = collected
        self._errors_shown = show_error
        try:
            await self.send(line)
            await self.replies_done()
        finally:
            self._collected = None
            self._errors_shown = True
        return collected

    async def relay(self, show: Show) -> None:
        """Show the server's lines as they arrive (block ends hidden), until it closes.

        After a drain notice, once every reply due has come (the server goes on serving
        until we leave), it is time to leave: :meth:`unless_drained` says so.
        """
        tracker = self.tracker
        while (event := await self._receive()) is not None:
            hidden = isinstance(event, EndOfBlock)
            if self._collected is not None and _is_reply(event):
                self._collected.append(event)
                hidden |= not self._errors_shown and _is_error(event)
            if not hidden:
                show(event)
            if not tracker.awaiting_reply:
                self._answered.set()
                if tracker.draining is not None and not tracker.exit_sent:
                    self._leave.set()

    async def unless_drained(self, wait: Callable[[], Awaitable[_T]]) -> _T:
        """What ``wait()`` gives, unless it is time to leave a draining server first.

        A front end waits for its next line to send with this: after a drain notice and
        the replies still due, :class:`ServerDrainingError` takes it to a new connection.
        A line that was read meanwhile is still returned, to be sent here.
        """
        draining = self.tracker.draining
        if draining is not None and self._leave.is_set():
            raise ServerDrainingError(draining.redirect)
        task = asyncio.ensure_future(wait())
        leaving = asyncio.ensure_future(self._leave.wait())
        try:
            await asyncio.wait({task, leaving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            leaving.cancel()
            if not task.done():
                task.cancel()
            await asyncio.wait({task, leaving})
        if task.cancelled() and (draining := self.tracker.draining) is not None:
            raise ServerDrainingError(draining.redirect)
        return task.result()

    async def converse(self, talk: Awaitable[None], show: Show) -> int:
        """Run ``talk``, which sends lines up to ``exit``, while relaying the server's lines.

        Returns the exit code; raises :class:`ClientError` if the server closes first:
        :class:`ConnectionLostError` if it did so without saying goodbye, and its
        :class:`ServerDrainingError` if the server drains (it asked us to reconnect),
        which ``talk`` raises too when it waits for a line with :meth:`unless_drained`.
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
        if self.tracker.draining is not None:
            # Even if the drain's bound passed and the server closed with a goodbye: the
            # session is held, to be resumed.
            raise ServerDrainingError(self.tracker.draining.redirect)
        if self.tracker.farewell:
            raise ClientError(SERVER_CLOSED, EXIT_SERVER_CLOSED)
        raise ConnectionLostError()

    async def close(self) -> None:
        """Close the connection and wait until it is closed, or cut it after a while."""
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)
        except TimeoutError:
            self._writer.transport.abort()
        except (ConnectionError, ssl.SSLError):
            pass

    async def _receive(self) -> Event | None:
        """The event for the next line from the server, or None once it has closed."""
        try:
            data = await self._reader.readline()
        except ValueError:
            raise ClientError(
                f"the server sent a line longer than {MAX_SERVER_LINE_BYTES} bytes.", EXIT_ERROR
            ) from None
        except (ConnectionError, TimeoutError, ssl.SSLError):
            # TimeoutError here is the system's (ETIMEDOUT: keepalive or retransmissions
            # gave up), so the only TimeoutError the callers see is their own limit's.
            return None
        if not data:
            return None
        return self.tracker.received(data.removesuffix(b"\n").decode(errors="replace"))


def _is_error(event: Event) -> bool:
    """Whether ``event`` is an ``ERROR`` line answering what was sent."""
    return isinstance(event, ReplyLine) and event.text.startswith(ERROR_PREFIX)


def _is_reply(event: Event) -> bool:
    """Whether ``event`` is part of the reply to a line we sent."""
    if isinstance(event, ChatLine):
        return event.replayed
    return isinstance(event, ReplyLine | Goodbye)
