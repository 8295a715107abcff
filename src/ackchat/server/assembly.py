"""Assembling a server from its settings: backend, address policy, TLS, listeners.

The composition root: :class:`ChatServer` reads the settings once, builds each part
and hands the parts to the ones that need them; it also starts and stops them in
order and runs the housekeeping that belongs to none of them alone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from ackchat.admission import AddressPolicy, is_loopback
from ackchat.backend.interface import Backend, BackendUnavailableError, SettingValue
from ackchat.backend.memory import MemoryBackend
from ackchat.backend.pending import Pending, Result, all_of
from ackchat.protocol import replies
from ackchat.server.listener import Connection, Listener
from ackchat.server.reload import LIVE_SETTINGS, SHARED_SETTINGS
from ackchat.server.session import ServerCounters, ServerSession, SessionContext
from ackchat.server.stats import Traffic
from ackchat.settings import ServerSettings, SettingsError
from ackchat.tls import TlsSetupError, server_context

log = logging.getLogger("ackchat.server")

# Seconds between housekeeping rounds (lingering connections, expired held sessions).
HOUSEKEEPING_INTERVAL = 1.0


class SystemClock:
    """The process's clocks: wall time for what is shown, monotonic for deadlines."""

    wall = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)


def memory_backend(settings: ServerSettings) -> MemoryBackend:
    """The default backend, sized by the settings."""
    return MemoryBackend(
        SystemClock(),
        max_clients=settings.max_clients,
        history_limit=settings.history_limit,
        room_history=settings.room_history,
        direct_history=settings.direct_history,
        resume_grace=settings.resume_grace,
        resume_buffer=settings.resume_buffer,
    )


def node_id(settings: ServerSettings) -> str:
    """This node's name in its cluster: ``--node-id``, else its ``HOST:PORT`` (with a
    random suffix when the system picks the port, or when nodes share it with
    ``--reuse-port``, so that such nodes differ too: each beats as a node of its own)."""
    if settings.node_id:
        return settings.node_id
    address = replies.host_port(settings.host, settings.port)
    unique = settings.port and not settings.reuse_port
    return address if unique else f"{address}-{secrets.token_hex(4)}"


def redis_backend(settings: ServerSettings) -> Backend:
    """A node of the cluster at ``settings.redis``, sized by the settings.

    Imported here: embedded mode does not need redis-py (the ``cluster`` extra).
    """
    try:
        from ackchat.backend.redis.backend import RedisBackend
    except ImportError as error:
        raise SettingsError(
            f"--redis needs redis-py ({error}): pip install 'ackchat[cluster]'"
        ) from None
    return RedisBackend(
        settings.redis,
        cluster_name=settings.cluster_name,
        node_id=node_id(settings),
        clock=SystemClock(),
        max_clients=settings.max_clients,
        history_limit=settings.history_limit,
        room_history=settings.room_history,
        direct_history=settings.direct_history,
        resume_grace=settings.resume_grace,
        resume_buffer=settings.resume_buffer,
        node_max_clients=settings.node_max_clients,
        heartbeat_ttl=settings.heartbeat_ttl,
        live_settings={name: getattr(settings, name) for name in SHARED_SETTINGS},
    )


def address_policy(settings: ServerSettings) -> AddressPolicy:
    """The per-address policy the settings describe (allow, deny, limits)."""
    return AddressPolicy(
        allow=settings.allow,
        deny=settings.deny,
        max_per_address=settings.max_per_address,
        connect_rate=settings.connect_rate,
        connect_burst=settings.connect_burst,
        exempt=settings.limit_exempt,
    )


class ChatServer:
    """An ackchat server: its backend, its listeners and its sessions' shared context."""

    def __init__(self, settings: ServerSettings, backend: Backend | None = None) -> None:
        """Raises :class:`SettingsError` if the password or TLS files cannot be used, or if
        cluster mode is asked for without redis-py."""
        self.settings = settings
        if backend is None:
            backend = redis_backend(settings) if settings.redis else memory_backend(settings)
        self.backend: Backend = backend
        secret = settings.read_password()
        try:
            tls = server_context(settings.tls_cert, settings.tls_key) if settings.tls else None
        except TlsSetupError as error:
            raise SettingsError(str(error)) from None
        self.counters = ServerCounters()
        self.context = SessionContext(
            settings=settings,
            backend=self.backend,
            admission=address_policy(settings),
            password=secret.encode() if secret else None,
            counters=self.counters,
            clock=time.monotonic,
        )
        self.listener = Listener(self.context, tls)
        self.backend.watch_settings(self._adopt)
        self._housekeeper: asyncio.TimerHandle | None = None

    @property
    def port(self) -> int:
        """The main port actually bound (useful when the settings asked for port 0)."""
        return self.listener.port

    @property
    def tls_port(self) -> int | None:
        """The separate TLS port actually bound, if one was asked for."""
        return self.listener.tls_port

    @property
    def connections(self) -> frozenset[Connection]:
        """Sockets open now, including refused ones still being closed."""
        return self.listener.connections

    @property
    def open_connections(self) -> int:
        """How many sockets are open now."""
        return len(self.listener.connections)

    @property
    def closing_connections(self) -> int:
        """Connections that said goodbye and wait for the peer to close its end."""
        return self.listener.closing_connections

    async def start(self) -> None:
        """Start the backend, then listen; raises BackendUnavailableError if the backend
        cannot be reached (cluster mode), OSError if listening is impossible."""
        await self.backend.start()
        try:
            await self.listener.start()
        except OSError:
            await self.backend.close()
            raise
        self._housekeeping()
        settings = self.settings
        if not is_loopback(settings.host) and not settings.tls and self.context.password is None:
            log.warning(
                "serving %s without TLS or a password: anyone who can reach this address"
                " can connect and read the traffic (see docs/SECURITY.md)",
                settings.host,
            )

    def reconfigure(self, settings: ServerSettings) -> Result[None]:
        """Run with ``settings`` from now on: the one path of every live change (SIGHUP,
        the admin API; see server/reload.py, which plans them and words the log lines).

        The client limit and the history sizes go to the backend (lowering the limit
        disconnects nobody), and the other live settings are shared through it (in a
        cluster, every node runs with them: see :meth:`_adopt`); the idle timeout and the
        rate limit go to every connected session too, the rest is read from the
        settings when next used. The backend's answers may come later: the result
        settles once they all have.
        """
        old = self.settings
        self._run_with(settings)
        done: list[Result[None]] = []
        if settings.max_clients != old.max_clients:
            done.append(self.backend.set_max_clients(settings.max_clients))
        sizes = (settings.history_limit, settings.room_history, settings.direct_history)
        if sizes != (old.history_limit, old.room_history, old.direct_history):
            done.append(self.backend.set_history_sizes(*sizes))
        shared = {
            name: getattr(settings, name)
            for name in SHARED_SETTINGS
            if getattr(settings, name) != getattr(old, name)
        }
        if shared:
            done.append(self.backend.share_settings(shared))
        return all_of(done)

    def _run_with(self, settings: ServerSettings) -> None:
        """Make ``settings`` the running ones, for new sessions and connected ones."""
        self.settings = self.context.settings = settings
        for session in self.sessions():
            session.reconfigure(settings)

    def _adopt(self, values: Mapping[str, SettingValue]) -> None:
        """Run with the live settings the service changed without this server (in a
        cluster: on another node, or the cluster's when this node joined), without
        asking the backend to set them again; the backend logs such changes."""
        changed: dict[str, Any] = {
            name: value
            for name, value in values.items()
            if name in LIVE_SETTINGS and getattr(self.settings, name) != value
        }
        if not changed:
            return
        try:
            settings = replace(self.settings, **changed)
        except SettingsError as error:
            log.warning("cannot run with the service's live settings %s: %s", changed, error)
            return
        self._run_with(settings)

    def sessions(self) -> Iterator[ServerSession]:
        """The sessions of the connections open now (named or not)."""
        for connection in self.listener.connections:
            session = connection.session
            if session is not None:
                yield session

    def traffic(self) -> Traffic:
        """Lines and bytes received and sent since the start, over every connection."""
        closed = self.counters.closed_traffic
        total = Traffic(closed.lines_in, closed.lines_out, closed.bytes_in, closed.bytes_out)
        for session in self.sessions():
            part = session.traffic
            total.add(part.lines_in, part.lines_out, part.bytes_in, part.bytes_out)
        return total

    def _housekeeping(self) -> None:
        """Once a second: cut lingering connections off, forget clients that did not
        resume, and run with the live settings another node of the cluster set."""
        self.listener.cut_off_lingering()
        limit = self.backend.max_clients
        if limit != self.settings.max_clients:
            self.settings = self.context.settings = replace(self.settings, max_clients=limit)
        try:
            expired = self.backend.expire()
        except BackendUnavailableError:
            expired = []
        if isinstance(expired, Pending):
            expired.add_done_callback(_log_expired)
        else:
            _log_names(expired)
        self._housekeeper = asyncio.get_running_loop().call_later(
            HOUSEKEEPING_INTERVAL, self._housekeeping
        )

    async def drain(self) -> bool:
        """Stop accepting and tell every client to reconnect (to ``drain_redirect`` if set).

        True once every client has left, False if some are still connected after
        ``drain_timeout`` seconds; :meth:`shutdown` then closes them.
        """
        settings = self.settings
        notice = replies.draining(settings.drain_redirect)
        return await self.listener.drain(notice, settings.drain_timeout)

    async def shutdown(self) -> None:
        """Stop accepting, say goodbye to every client within the timeout, stop the backend."""
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        await self.listener.shutdown()
        await self.backend.close()
        log.info("server stopped")

    def abort_all(self) -> None:
        """Drop every connection now, unsent bytes and all (a second Ctrl-C)."""
        self.listener.abort_all()


def _log_names(expired: list[str]) -> None:
    for name in expired:
        log.info("%s did not come back in time", name)


def _log_expired(expired: Pending[list[str]]) -> None:
    try:
        _log_names(expired.result())
    except BackendUnavailableError:
        return
