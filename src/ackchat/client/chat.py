"""A chat session that outlives its connections: it starts named and in rooms, and comes back.

:class:`ChatClient` opens the first connection, sends the ``--name`` and ``--room``
commands (a refusal ends the client), then lets the front end talk. When the connection is
lost without a goodbye (docs/PROTOCOL.md, "Resume"), or the server drains and asks its
clients to reconnect, and reconnecting is on, it connects again on the schedule of
:func:`~ackchat.client.reconnect.backoff_delays` (to the address the drain notice names,
if it names one, from then on) and sends ``/resume <token>`` first: the server gives the
name, rooms and missed messages back, or refuses the token, and the client goes on as the
new ``ClientNN``. The front end keeps its prompt and its queue of typed lines throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType

from ackchat.client.core import Event, Greeting, WrongPassword, line_text
from ackchat.client.errors import (
    EXIT_AUTH_FAILED,
    EXIT_REFUSED,
    EXIT_SERVER_CLOSED,
    EXIT_USAGE,
    ClientError,
    ConnectionLostError,
    ServerDrainingError,
)
from ackchat.client.reconnect import backoff_delays
from ackchat.client.session import PasswordSource, Session, Show, configured_only
from ackchat.protocol.replies import ERROR_PREFIX, host_port
from ackchat.settings import ClientSettings

# How long to wait for the goodbye after saying exit before closing anyway.
GOODBYE_TIMEOUT = 2.0

# Sends lines on one connection until ``exit``; run again on each new connection.
Talk = Callable[[Session], Awaitable[None]]
# Tells the user what the client itself does (reconnecting, resuming).
Notify = Callable[[str], None]


def startup_lines(settings: ClientSettings) -> list[tuple[str, str]]:
    """The commands ``--name`` and ``--room`` stand for, each with the option it came from."""
    lines = []
    if settings.name:
        lines.append((f"/nick {settings.name}", f"--name {shlex.quote(settings.name)}"))
    for room in filter(None, (part.strip() for part in settings.room.split(","))):
        lines.append((f"/join {room}", f"--room {shlex.quote(room)}"))
    for line, option in lines:
        if "\n" in line or "\r" in line:
            raise ClientError(f"{option.split()[0]} must be a single line.", EXIT_USAGE)
    return lines


async def say_exit(session: Session) -> None:
    """Send ``exit`` unless it was sent, and wait a little for the goodbye."""
    if not session.tracker.exit_sent:
        await session.send(b"exit")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(session.replies_done(), GOODBYE_TIMEOUT)


class ChatClient:
    """One chat session over as many connections as it takes; use it with ``async with``."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        reconnect: bool,
        notify: Notify,
        stop: asyncio.Event | None = None,
        wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        # The settings to connect with: the server's address changes when a drain
        # notice names another one.
        self._target = settings
        self._reconnect = reconnect
        self._notify = notify
        self._stop = stop or asyncio.Event()
        self._wait = wait
        self._jitter = jitter
        self._startup = startup_lines(settings)
        self._session: Session | None = None
        self._password = ""
        self._held_token = ""

    @property
    def name(self) -> str:
        """Our name on the server ("" before the greeting)."""
        return "" if self._session is None else self._session.tracker.name

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def open(self, password: PasswordSource) -> Greeting:
        """Connect and sign in for the first time; the password that works is kept."""
        session = await Session.connect(self._target)
        self._session = session
        greeting = await session.greet(self._remember(password))
        return greeting

    async def run(self, talk: Talk, show: Show) -> int:
        """Converse until ``exit``: first the startup commands, after a loss ``/resume``."""
        assert self._session is not None, "open() first"
        preamble: Talk = self._start
        while True:
            try:
                return await self._session.converse(
                    self._talk_after(preamble, self._session, talk), show
                )
            except ServerDrainingError as drained:
                if not self._reconnect:
                    raise
                if drained.redirect is not None:
                    host, port = drained.redirect
                    self._target = replace(self._target, host=host, port=port)
                    why = f"the server is draining; moving to {host_port(host, port)}"
                else:
                    why = "the server is draining"
            except ConnectionLostError:
                if not self._reconnect:
                    raise
                why = "the connection was lost"
            token = self._held_token or self._session.tracker.resume_token
            # Closed without exit: the server holds the session for /resume.
            await self._session.close()
            self._session = await self._come_back(why)
            preamble = self._resumer(token)

    async def _talk_after(self, preamble: Talk, session: Session, talk: Talk) -> None:
        await preamble(session)
        await talk(session)

    def _remember(self, source: PasswordSource) -> PasswordSource:
        """``source``, noting the last password it gave for reconnecting with it."""

        async def give(complaint: WrongPassword | None) -> str:
            self._password = await source(complaint)
            return self._password

        return give

    async def _start(self, session: Session) -> None:
        """Send the ``--name`` and ``--room`` commands; a refusal says exit and ends the client."""
        for line, option in self._startup:
            reply = await session.ask(line.encode())
            answer = _first_text(reply)
            if answer.startswith(ERROR_PREFIX):
                await say_exit(session)
                raise ClientError(
                    f"{option} was refused: {answer.removeprefix(ERROR_PREFIX)}", EXIT_REFUSED
                )

    def _resumer(self, token: str) -> Talk:
        """The preamble on a new connection: take the old session back with ``token``.

        A refusal is told once, in a sentence of ours: the server's error line is not shown.
        """

        async def resume(session: Session) -> None:
            self._held_token = ""
            if not token:
                self._notify(
                    f"reconnected as {session.tracker.name}; the server gave no resume token."
                )
                return
            reply = await session.ask(f"/resume {token}".encode(), show_error=False)
            answer = _first_text(reply)
            if answer.startswith(ERROR_PREFIX):
                self._notify(
                    f"the session could not be resumed ({answer.removeprefix(ERROR_PREFIX)});"
                    f" you are {session.tracker.name} now."
                )
            else:
                self._held_token = token  # A resumed session keeps its first token.

        return resume

    async def _come_back(self, why: str) -> Session:
        """A new connection, signed in, tried on the backoff schedule within the timeout.

        ``why`` starts the notice that says so. Without a timeout (``reconnect_timeout``
        0) it tries until it succeeds, or until asked to stop.
        """
        limit = self._settings.reconnect_limit
        clock = asyncio.get_running_loop().time
        if limit is None:
            self._notify(f"{why}; reconnecting without a time limit...")
            deadline = None
        else:
            self._notify(f"{why}; reconnecting for up to {limit:g} seconds...")
            deadline = clock() + limit
        why = "no attempt was left"
        for delay in backoff_delays(limit, self._jitter):
            if await self._stopped_within(delay) or (deadline is not None and clock() > deadline):
                break
            try:
                session = await Session.connect(self._target)
            except ClientError as error:
                why = str(error)
                continue
            try:
                await session.greet(configured_only(self._password))
            except ClientError as error:
                await session.close()
                if error.exit_code == EXIT_AUTH_FAILED:
                    raise
                why = str(error)
                continue
            self._notify(f"reconnected as {session.tracker.name}.")
            return session
        raise ClientError(
            f"the connection was lost and could not be restored (last: {why})", EXIT_SERVER_CLOSED
        )

    async def _stopped_within(self, delay: float) -> bool:
        """Wait ``delay`` seconds; True if asked to stop meanwhile."""
        waiting = asyncio.ensure_future(self._wait(delay))
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            stopping.cancel()
            await asyncio.wait({waiting, stopping})
        return self._stop.is_set()


def _first_text(reply: list[Event]) -> str:
    """The first line of a reply ("" if the connection ended before it)."""
    return line_text(reply[0]) if reply else ""
