"""Run a server as a process: event loop, logging, signals, reload and exit codes.

SIGINT and SIGTERM shut the server down gracefully (a second one cuts every connection
at once); SIGHUP re-reads the configuration and applies the live settings it changed
(``max_clients``, timeouts, rate limits, history sizes), logging what changed and what
did not (see :mod:`ackchat.server.reload`). SIGUSR1 drains the server for a rolling
restart: it stops accepting, tells every client to reconnect, and exits (code 0) once
they have left or ``drain_timeout`` has passed, closing the rest as a shutdown does;
SIGINT or SIGTERM meanwhile shuts down at once. With ``--http`` the admin API runs on
the same loop (:mod:`ackchat.http`): its changes take the same path as SIGHUP's, and
its ``POST /api/drain`` starts the same drain as SIGUSR1.
A configuration that fails to load is reported and the running one kept. Settings that
cannot be used (a password file that cannot be read, a bad TLS key) raise
:class:`SettingsError` before the event loop starts, for ``ackchat`` to report.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from ackchat.backend.interface import BackendUnavailableError
from ackchat.backend.pending import Pending
from ackchat.server.assembly import ChatServer
from ackchat.server.logs import configure_logging
from ackchat.server.reload import plan_reload
from ackchat.settings import Loaded, ServerSettings, SettingsError
from ackchat.settings.values import split_address

if TYPE_CHECKING:
    from ackchat.http.auth import AdminToken

log = logging.getLogger("ackchat.server")

EXIT_OK = 0
EXIT_FAILURE = 1


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop to run on: uvloop when asked for or, with ``auto``, when installed."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError(
                "--loop uvloop was asked for, but uvloop is not installed"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


Reloader = Callable[[], Loaded[ServerSettings]]


def run_server(settings: ServerSettings, reload: Reloader) -> int:
    """Serve until a signal says stop; ``reload`` re-reads the settings on SIGHUP.

    Raises :class:`SettingsError` if the settings cannot be used.
    """
    factory = loop_factory(settings.loop)
    server = ChatServer(settings)
    token = _admin_token(settings) if settings.http else None
    configure_logging(settings.log_level, settings.log_format)
    with asyncio.Runner(loop_factory=factory) as runner:
        # Once serving, what start-up made (modules, settings, the HTTP routes) stays for
        # the process's life: frozen, the garbage collector no longer walks it each time
        # it looks for cycles (with --http that heap is twice as large).
        return runner.run(serve(server, reload, token, serving=gc.freeze))


def _admin_token(settings: ServerSettings) -> AdminToken:
    """The admin API's token (made and written to a file if none is given).

    Imported here: a server without ``--http`` needs neither aiohttp nor prometheus-client.
    """
    try:
        from ackchat.http.auth import admin_token
    except ImportError as error:
        raise SettingsError(
            f"--http needs aiohttp and prometheus-client ({error}): pip install 'ackchat[http]'"
        ) from None
    return admin_token(settings)


async def serve(
    server: ChatServer,
    reload: Reloader,
    token: AdminToken | None,
    serving: Callable[[], None],
) -> int:
    """Start the server (and with ``token``, the admin API), call ``serving`` once both
    are up, wait for SIGINT/SIGTERM or the end of a drain, then shut it down."""
    settings = server.settings
    # The settings as the file and flags last gave them: a reload applies what changed
    # since, so that what the admin API set stays until the file changes it.
    loaded_last = settings
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    drain = asyncio.Event()
    drain_cause = ""

    def on_stop_signal(signal_name: str) -> None:
        if stop.is_set():
            log.warning("%s again: closing every connection now", signal_name)
            server.abort_all()
            return
        log.info("%s received: shutting down", signal_name)
        stop.set()

    def on_reload_signal() -> None:
        nonlocal loaded_last
        try:
            loaded = reload()
        except SettingsError as error:
            log.error("reload failed, keeping the running configuration: %s", error)
            return
        outcome = plan_reload(server.settings, loaded, loaded_last)
        loaded_last = loaded.settings
        applied = server.reconfigure(outcome.settings)
        if isinstance(applied, Pending):
            applied.add_done_callback(_log_failed_change)
        for text in outcome.report:
            log.info("%s", text)

    def begin_drain(cause: str) -> bool:
        """Drain, saying ``cause`` in the log; False if draining or stopping already."""
        nonlocal drain_cause
        if drain.is_set() or stop.is_set():
            log.info("%s, but the server is stopping already", cause)
            return False
        drain_cause = cause
        drain.set()
        return True

    # Handlers first: a signal that arrives while the server starts is not lost.
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, on_stop_signal, signal_number.name)
    loop.add_signal_handler(signal.SIGHUP, on_reload_signal)
    loop.add_signal_handler(signal.SIGUSR1, begin_drain, "SIGUSR1 received")
    try:
        try:
            await server.start()
        except BackendUnavailableError as error:
            log.error("%s", error)
            return EXIT_FAILURE
        except OSError as error:
            log.error(
                "cannot listen on %s port %d: %s", settings.host, settings.port, _explain(error)
            )
            return EXIT_FAILURE
        log.info("event loop: %s", type(loop).__module__.split(".")[0])
        admin = None
        if token is not None:
            from ackchat.http.app import AdminHttp

            admin = AdminHttp(server, token, begin_drain)
            try:
                await admin.start()
            except OSError as error:
                host, port = split_address(settings.http)
                log.error(
                    "cannot serve the admin API on %s port %d: %s", host, port, _explain(error)
                )
                await server.shutdown()
                token.forget()
                return EXIT_FAILURE
        serving()
        if await _unless_stopped(stop, asyncio.ensure_future(drain.wait())):
            await _drain(server, stop, drain_cause)
        # The chat server first: its WebSocket clients are told goodbye like the others.
        await server.shutdown()
        if admin is not None:
            await admin.close()
    finally:
        for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(signal_number)
    return EXIT_OK


async def _drain(server: ChatServer, stop: asyncio.Event, cause: str) -> None:
    """Drain the server until its clients have left or the bound passes, or until ``stop``."""
    settings = server.settings
    where = f" to {settings.drain_redirect}" if settings.drain_redirect else ""
    log.info(
        "%s: draining: accepting no more clients, telling %d connections to"
        " reconnect%s; waiting up to %g seconds for them to leave",
        cause,
        len(server.connections),
        where,
        settings.drain_timeout,
    )
    draining = asyncio.ensure_future(server.drain())
    if not await _unless_stopped(stop, draining):
        return
    if draining.result():
        log.info("drained: every client has left")
    else:
        log.warning(
            "drain timeout: %d connections still open after %g seconds; closing them",
            len(server.connections),
            settings.drain_timeout,
        )


async def _unless_stopped(stop: asyncio.Event, task: asyncio.Future[bool]) -> bool:
    """Wait for ``task``, or cancel it if ``stop`` is set first; True if it finished."""
    stopping: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({stopping, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        task.cancel()
        await asyncio.wait({stopping, task})
    return not task.cancelled()


def _log_failed_change(applied: Pending[None]) -> None:
    """Log a live change the backend could not make (the shared state unreachable)."""
    try:
        applied.result()
    except BackendUnavailableError as error:
        log.error("the backend could not apply the new settings: %s", error)


def _explain(error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return "the address is already in use (is another server running?)"
    if error.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return error.strerror or str(error)
