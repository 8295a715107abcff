"""The admin HTTP API and ``/metrics``, served by aiohttp on the chat server's event loop.

Routes (README, "Operating it over HTTP"):

- ``GET /api/status`` (``?all=1``): what ``status`` shows, as JSON, with the reasons,
  the counts, the live limits and the rooms.
- ``GET /api/clients``: the connected clients, with their rooms, idle time and traffic.
- ``PATCH /api/config``: change live settings (a JSON object of names and values).
- ``DELETE /api/clients/{name}``: disconnect a client (recorded as ``kicked``).
- ``POST /api/drain``: drain the server, as SIGUSR1 does.
- ``GET /metrics``: the Prometheus exposition.

Changes need the admin token (auth.py); reads need it too with ``--admin-read-token``.
Every answer is JSON but ``/metrics``'s, refusals included: ``{"error": ..., "field":
...}``. What is shown comes from the backend (so that in a cluster it is the whole
service's) and from this server's own counts; views.py shapes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ackchat.admission import Refusal, is_loopback
from ackchat.backend.interface import BackendUnavailableError
from ackchat.backend.pending import Pending, Result
from ackchat.chat.names import name_key
from ackchat.http.auth import AdminToken
from ackchat.http.metrics import CHAT_SCOPES, LoopLag, server_registry
from ackchat.http.views import JSON, LocalClient, clients_view, error_view, status_view
from ackchat.protocol.replies import host_port
from ackchat.records import ChatLoss, DisconnectReason
from ackchat.server.assembly import ChatServer
from ackchat.server.reload import SettingChangeError, live_values, plan_change
from ackchat.settings.values import boolean, split_address

log = logging.getLogger("ackchat.http")

T = TypeVar("T")

# Asks the process to drain (as SIGUSR1 does), saying why; False if it is draining or
# stopping already.
DrainRequest = Callable[[str], bool]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNAVAILABLE = "the server cannot reach its shared state; try again later"
# How long a stopping server lets a request in progress finish, in seconds.
SHUTDOWN_TIMEOUT = 1.0


class RequestError(Exception):
    """A request that cannot be served: its status, one sentence, and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


async def settled(result: Result[T]) -> T:
    """A backend's answer: at once, or once a pending one is settled."""
    if not isinstance(result, Pending):
        return result
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def done(answer: Pending[T]) -> None:
        if future.cancelled():
            return
        try:
            future.set_result(answer.result())
        except Exception as error:
            future.set_exception(error)

    result.add_done_callback(done)
    return await future


class AdminHttp:
    """The HTTP side of one chat server: its routes, its token, its metrics."""

    def __init__(self, server: ChatServer, token: AdminToken, drain: DrainRequest) -> None:
        self._server = server
        self._token = token
        self._drain = drain
        self._lag = LoopLag()
        self._registry = server_registry(server, self._lag)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application(middlewares=[self._guard])
        self.app.add_routes(
            [
                web.get("/api/status", self._status),
                web.get("/api/clients", self._clients),
                web.patch("/api/config", self._change_config),
                web.delete("/api/clients/{name}", self._kick),
                web.post("/api/drain", self._request_drain),
                web.get("/metrics", self._metrics),
            ]
        )

    async def start(self) -> None:
        """Listen on the ``http`` address; raises OSError if that is impossible."""
        settings = self._server.settings
        host, port = split_address(settings.http)
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._lag.start()
        reads = "need the token too" if settings.admin_read_token else "are open"
        log.info(
            "admin API and /metrics on http://%s/ (reads %s; changes need the admin token)",
            host_port(host, self.port),
            reads,
        )
        if self._token.made_file is not None:
            log.info("admin token written to %s (readable by you only)", self._token.made_file)
        if not is_loopback(host):
            log.warning(
                "the admin API on %s is plain HTTP: its token and answers cross the network"
                " unencrypted (keep it on 127.0.0.1, or put a TLS proxy in front)",
                host,
            )

    async def close(self) -> None:
        """Stop serving (a request in progress gets a moment to finish), forget the token."""
        self._lag.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._token.forget()

    # Every request: the token, and refusals as JSON

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        reading = request.method in ("GET", "HEAD")
        if not reading or self._server.settings.admin_read_token:
            authorization = request.headers.get("Authorization")
            if not self._token.matches(authorization):
                log.warning(
                    "admin API: refused %s %s from %s: %s",
                    request.method,
                    request.path,
                    request.remote,
                    "no token" if authorization is None else "wrong token",
                )
                return web.json_response(
                    error_view("unauthorized"),
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="ackchat"'},
                )
        try:
            return await handler(request)
        except RequestError as error:
            return web.json_response(error_view(str(error), error.field), status=error.status)
        except BackendUnavailableError:
            return web.json_response(error_view(UNAVAILABLE), status=503)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
            return web.json_response(error_view(error.reason), status=error.status, headers=headers)

    # Reads

    async def _status(self, request: web.Request) -> web.Response:
        server = self._server
        settings = server.settings
        show_all = _flag(request, "all")
        snapshot = await settled(
            server.backend.snapshot(None if show_all else settings.status_recent)
        )
        rooms = await settled(server.backend.rooms())
        counters = server.counters
        return web.json_response(
            status_view(
                snapshot,
                show_addresses=self._shows_addresses(request),
                refused=[(reason, counters.refused[reason]) for reason in Refusal],
                chat_losses=[(loss, counters.chat_losses[loss]) for loss in ChatLoss],
                limits=live_values(settings),
                rooms=rooms,
                counters=_counts(server),
            )
        )

    async def _clients(self, request: web.Request) -> web.Response:
        server = self._server
        snapshot = await settled(server.backend.snapshot(0))
        who = await settled(server.backend.who())
        now = server.context.clock()
        local = {}
        for session in server.sessions():
            if session.name is not None:
                traffic = session.traffic
                local[name_key(session.name)] = LocalClient(
                    now - session.last_input,
                    traffic.lines_in,
                    traffic.lines_out,
                    traffic.bytes_in,
                    traffic.bytes_out,
                )
        return web.json_response(
            clients_view(snapshot, who, local, show_addresses=self._shows_addresses(request))
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # Changes

    async def _change_config(self, request: web.Request) -> web.Response:
        values = await _json_object(request)
        server = self._server
        # Planned and applied in one step, without awaiting in between: concurrent
        # changes never overlap, each starts from what the one before it left.
        try:
            outcome = plan_change(server.settings, values, f"admin API ({request.remote})")
        except SettingChangeError as error:
            raise RequestError(400, str(error), error.field) from None
        applied = server.reconfigure(outcome.settings)
        for text in outcome.report:
            log.info("%s", text)
        await settled(applied)
        changed = {name: {"from": old, "to": new} for name, (old, new) in outcome.changed.items()}
        return web.json_response({"changed": changed, "limits": live_values(server.settings)})

    async def _kick(self, request: web.Request) -> web.Response:
        wanted = request.match_info["name"]
        session = self._server.session_named(wanted)
        name = session.name if session is not None else None
        if session is None or name is None or not session.kick():
            raise RequestError(404, f"no client called {wanted} is connected here", "name")
        log.info("admin API (%s): kicked %s (%s)", request.remote, name, session.address)
        return web.json_response({"kicked": name})

    async def _request_drain(self, request: web.Request) -> web.Response:
        settings = self._server.settings
        connections = len(self._server.connections)
        if not self._drain(f"drain asked for over the admin API ({request.remote})"):
            raise RequestError(409, "the server is draining or stopping already")
        return web.json_response(
            {
                "draining": True,
                "connections": connections,
                "timeout": settings.drain_timeout,
                "redirect": settings.drain_redirect or None,
            },
            status=202,
        )

    def _shows_addresses(self, request: web.Request) -> bool:
        """Whether this requester sees client addresses (``--show-addresses``, as for
        ``status`` over TCP: ``loopback`` shows them to requests from this machine)."""
        visibility = self._server.settings.show_addresses
        return visibility == "all" or (
            visibility == "loopback" and is_loopback(request.remote or "")
        )


def _counts(server: ChatServer) -> JSON:
    """This server's own counts since it started, as ``/metrics`` has them."""
    counters = server.counters
    traffic = server.traffic()
    return {
        "admitted": counters.admitted,
        "rejected_full": counters.full,
        "disconnections": {str(reason): counters.departures[reason] for reason in DisconnectReason},
        "chat_messages": {scope: counters.chat_messages[scope] for scope in CHAT_SCOPES},
        "lines_in": traffic.lines_in,
        "lines_out": traffic.lines_out,
        "bytes_in": traffic.bytes_in,
        "bytes_out": traffic.bytes_out,
    }


def _flag(request: web.Request, name: str) -> bool:
    """A yes/no query parameter (``?all=1``); absent is no."""
    value = request.query.get(name)
    if value is None:
        return False
    try:
        return boolean(value or "1")
    except ValueError as error:
        raise RequestError(400, f"{name} {error}, got {value!r}", name) from None


async def _json_object(request: web.Request) -> JSON:
    """The request's body: a JSON object with at least one member."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except ValueError:
        raise RequestError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict) or not body:
        raise RequestError(
            400,
            'the body must be a JSON object of settings and their values, like {"max_clients": 10}',
        )
    return body
