"""Run a server as a process: event loop, logging, signals, reload and exit codes.

SIGINT and SIGTERM shut the server down gracefully (a second one cuts every connection
at once); SIGHUP re-reads the configuration and applies ``max_clients`` to new
connections, logging what changed and what did not (see :mod:`ackchat.server.reload`).
A configuration that fails to load is reported and the running one kept. Settings that
cannot be used (a password file that cannot be read, a bad TLS key) raise
:class:`SettingsError` before the event loop starts, for ``ackchat`` to report.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
from collections.abc import Callable

from ackchat.server.assembly import ChatServer
from ackchat.server.reload import plan_reload
from ackchat.settings import Loaded, ServerSettings, SettingsError

log = logging.getLogger("ackchat.server")

EXIT_OK = 0
EXIT_FAILURE = 1


def configure_logging(level: str) -> None:
    """Log lines with a timestamp to stderr."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
    configure_logging(settings.log_level)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(serve(server, reload))


async def serve(server: ChatServer, reload: Reloader) -> int:
    """Start the server, wait for SIGINT/SIGTERM, then shut it down."""
    settings = running = server.settings
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_stop_signal(signal_name: str) -> None:
        if stop.is_set():
            log.warning("%s again: closing every connection now", signal_name)
            server.abort_all()
            return
        log.info("%s received: shutting down", signal_name)
        stop.set()

    def on_reload_signal() -> None:
        nonlocal running
        try:
            loaded = reload()
        except SettingsError as error:
            log.error("reload failed, keeping the running configuration: %s", error)
            return
        outcome = plan_reload(running, loaded)
        running = outcome.settings
        server.set_max_clients(running.max_clients)
        for text in outcome.report:
            log.info("%s", text)

    # Handlers first: a signal that arrives while the server starts is not lost.
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, on_stop_signal, signal_number.name)
    loop.add_signal_handler(signal.SIGHUP, on_reload_signal)
    try:
        try:
            await server.start()
        except OSError as error:
            log.error(
                "cannot listen on %s port %d: %s", settings.host, settings.port, _explain(error)
            )
            return EXIT_FAILURE
        log.info("event loop: %s", type(loop).__module__.split(".")[0])
        await stop.wait()
        await server.shutdown()
    finally:
        for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signal_number)
    return EXIT_OK


def _explain(error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return "the address is already in use (is another server running?)"
    if error.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return error.strerror or str(error)
