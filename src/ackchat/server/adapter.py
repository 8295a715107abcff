"""What every connection that runs a :class:`ServerSession` does the same way.

A TCP connection (connection.py) and a WebSocket (ackchat.http.websocket) differ in how
bytes move; the session's timers, its flush per loop turn and the listener's calls
(linger, drain, shutdown) are the same for both, and live here once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ackchat.records import DisconnectReason
from ackchat.server.session import ServerSession, Timer

if TYPE_CHECKING:
    from ackchat.server.listener import Listener


class SessionAdapter:
    """A session's timers and the listener's calls, for a connection class to inherit."""

    __slots__ = ("_listener", "_loop", "_session", "_timers")

    def __init__(self, listener: Listener, loop: asyncio.AbstractEventLoop) -> None:
        self._listener = listener
        self._loop = loop
        self._session: ServerSession | None = None
        # The session's timers that are set, made when the first one is.
        self._timers: dict[Timer, asyncio.Handle] | None = None

    @property
    def name(self) -> str | None:
        """The client's name, or None while it has none."""
        return self._session.name if self._session is not None else None

    @property
    def session(self) -> ServerSession | None:
        """The connection's session (None before it starts)."""
        return self._session

    @property
    def transport(self) -> asyncio.Transport | None:
        """The socket's transport (None before it is made and once it is gone)."""
        raise NotImplementedError

    def cut_off(self) -> None:
        """End the session now, unsent bytes and all (a second Ctrl-C)."""
        raise NotImplementedError

    # What the session asks for (SessionIO)

    def set_timer(self, timer: Timer, delay: float) -> None:
        if timer is Timer.LINGER:
            self._listener.linger(self, delay)
            return
        timers = self._timers
        if timers is None:
            timers = self._timers = {}
        elif (earlier := timers.get(timer)) is not None:
            earlier.cancel()
        if delay > 0:
            timers[timer] = self._loop.call_later(delay, self._timer_due, timer)
        else:
            timers[timer] = self._loop.call_soon(self._timer_due, timer)

    def cancel_timer(self, timer: Timer) -> None:
        if timer is Timer.LINGER:
            self._listener.unlinger(self)
            return
        if self._timers and (handle := self._timers.pop(timer, None)) is not None:
            handle.cancel()

    def flush_soon(self) -> None:
        assert self._session is not None
        self._listener.deliveries.flush_soon(self._session)

    def _timer_due(self, timer: Timer) -> None:
        if self._timers is not None:
            self._timers.pop(timer, None)
        assert self._session is not None
        self._session.timer_due(timer)

    def _cancel_timers(self) -> None:
        """The connection is gone: no timer of its session may fire."""
        if self._timers:
            for handle in self._timers.values():
                handle.cancel()
        self._timers = None

    # The listener's calls

    def lingered(self) -> None:
        """Closing took longer than the bound: the session aborts the connection."""
        assert self._session is not None
        self._session.timer_due(Timer.LINGER)

    def drain(self, notice: bytes) -> None:
        """The server drains: the session tells its client to reconnect elsewhere."""
        if self._session is not None:
            self._session.drain(notice)

    def shut_down(self, farewell: bytes) -> None:
        """The server is stopping: end the session with ``farewell``."""
        if self._session is not None:
            self._session.close(DisconnectReason.SERVER_SHUTDOWN, farewell)
