"""The admin HTTP API and ``/metrics``, served by aiohttp on the chat server's event loop.

Routes (README, "Operating it over HTTP"):

- ``GET /api/status`` (``?all=1``): what ``status`` shows, as JSON, with the reasons,
  the counts, the live limits and the rooms.
- ``GET /api/clients``: the connected clients, with their rooms, idle time and traffic.
- ``PATCH /api/config``: change live settings (a JSON object of names and values).
- ``DELETE /api/clients/{name}``: disconnect a client (recorded as ``kicked``), wherever
  it is connected (in a cluster, the node it is on does it).
- ``POST /api/drain``: drain the server, as SIGUSR1 does.
- ``GET /metrics``: the Prometheus exposition.
- ``GET /api/events``: the dashboard's live feed, server-sent events (live.py).
- ``GET /``, ``GET /chat`` and ``/static/``: the dashboard and the chat page, files
  of the package (static/), with a content security policy that lets them run only
  their own scripts and talk only to this origin.
- ``GET /ws``: the line protocol over WebSocket (websocket.py), for the chat page.

Changes need the admin token (auth.py); reads need it too with ``--admin-read-token``,
but for the pages (which hold no data: they fetch it with the token the user gives
them) and ``/ws`` (a chat client, under the chat server's own password if it has one).
A WebSocket upgrade from another origin's page is refused, so a web site a user of
this machine visits cannot chat, or read ``status``, in their name.
Every answer of the API is JSON, refusals included (those of ``/metrics``, the feed,
the pages and ``/ws`` too): ``{"error": ..., "field": ...}``. What is shown comes from
the backend (so that in a cluster it is the whole service's) and from this server's own
counts; views.py shapes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ackchat.admission import Refusal, is_loopback
from ackchat.backend.interface import BackendUnavailableError
from ackchat.http.auth import AdminToken
from ackchat.http.live import (
    CLIENTS_SHOWN,
    CLIENTS_SHOWN_MAX,
    LiveFeed,
    Picture,
    Watch,
    local_clients,
    update_event,
)
from ackchat.http.metrics import CHAT_SCOPES, LoopLag, server_registry
from ackchat.http.settle import settled
from ackchat.http.views import JSON, clients_view, error_view, status_view
from ackchat.http.websocket import WebSocketConnection, websocket_response
from ackchat.protocol.replies import host_port
from ackchat.records import ChatLoss, DisconnectReason
from ackchat.server.assembly import ChatServer
from ackchat.server.reload import SettingChangeError, live_values, plan_change
from ackchat.settings.values import boolean, split_address

log = logging.getLogger("ackchat.http")

# Asks the process to drain (as SIGUSR1 does), saying why; False if it is draining or
# stopping already.
DrainRequest = Callable[[str], bool]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNAVAILABLE = "the server cannot reach its shared state; try again later"
# How long a stopping server lets a request in progress finish, in seconds.
SHUTDOWN_TIMEOUT = 1.0
# The pages' files.
STATIC = Path(__file__).resolve().parent / "static"
# What the pages may do: run their own scripts and styles, talk to this origin, no more.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Paths open without the read token (GET and HEAD only): the pages and the chat socket.
OPEN_PATHS = frozenset({"/", "/chat", "/ws"})


class RequestError(Exception):
    """A request that cannot be served: its status, one sentence, and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class AdminHttp:
    """The HTTP side of one chat server: its routes, its token, its metrics."""

    def __init__(self, server: ChatServer, token: AdminToken, drain: DrainRequest) -> None:
        self._server = server
        self._token = token
        self._drain = drain
        self._lag = LoopLag()
        self._registry = server_registry(server, self._lag)
        self._feed = LiveFeed(server)
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
                web.get("/api/events", self._events),
                web.get("/", _page("dashboard.html")),
                web.get("/chat", _page("chat.html")),
                web.get("/ws", self._websocket),
                web.static("/static", STATIC),
            ]
        )
        self.app.on_response_prepare.append(_protect)

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
        self._feed.start()
        reads = "need the token too" if settings.admin_read_token else "are open"
        address = host_port(host, self.port)
        log.info("dashboard on http://%s/, chat page on http://%s/chat", address, address)
        log.info(
            "admin API and /metrics on http://%s/ (reads %s; changes need the admin token)",
            address,
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
        """Stop serving (a request in progress gets a moment to finish, the dashboards'
        streams end), forget the token."""
        self._lag.stop()
        await self._feed.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._token.forget()

    # Every request: the token, and refusals as JSON

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        reading = request.method in ("GET", "HEAD")
        open_path = reading and (request.path in OPEN_PATHS or request.path.startswith("/static/"))
        if not open_path and (not reading or self._server.settings.admin_read_token):
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
        return web.json_response(
            clients_view(
                snapshot, who, local_clients(server), show_addresses=self._shows_addresses(request)
            )
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """The dashboard's feed: an update at once, then as live.py says, until it closes."""
        watch = Watch(
            request.query.get("q", "").strip(),
            _count(request, "limit", CLIENTS_SHOWN, CLIENTS_SHOWN_MAX),
            self._shows_addresses(request),
        )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        feed = self._feed
        sent_until = 0.0
        with feed.subscribe() as subscription:
            picture: Picture | None = await feed.picture()
            while picture is not None:
                samples = feed.samples.after(sent_until)
                if samples:
                    sent_until = samples[-1].time
                try:
                    await response.write(update_event(picture, watch, samples))
                except ConnectionError:
                    break
                picture = await subscription.next()
        return response

    # The chat socket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``: one chat client over WebSocket, for as long as it stays."""
        listener = self._server.listener
        if not listener.accepting:
            raise RequestError(503, "the server is draining or stopping; connect to another")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            log.warning("refused a WebSocket from %s: a page of %s", request.remote, origin)
            raise RequestError(403, "a WebSocket from another origin's page is refused")
        transport = request.transport
        ws = websocket_response(listener)
        if not ws.can_prepare(request).ok or transport is None:
            raise RequestError(400, "GET /ws is a WebSocket: an upgrade request was expected")
        await ws.prepare(request)
        await WebSocketConnection(listener, ws, transport).run()
        return ws

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
        """Disconnect a client wherever it is connected (in a cluster, the node it is on
        does it): 404 if it is connected nowhere."""
        wanted = request.match_info["name"]
        server = self._server
        record = await settled(server.backend.kick(wanted))
        if record is None:
            where = "to any node of the cluster" if server.settings.redis else "here"
            raise RequestError(404, f"no client called {wanted} is connected {where}", "name")
        on = f" on node {record.node}" if record.node else ""
        log.info(
            "admin API (%s): kicked %s (%s)%s", request.remote, record.name, record.address, on
        )
        return web.json_response({"kicked": record.name})

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


def _page(name: str) -> Handler:
    """A handler that serves the page ``static/<name>``."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name)

    return page


async def _protect(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every answer gets: no sniffing, no framing, no referrer; the pages'
    content security policy."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = PAGE_POLICY


def _count(request: web.Request, name: str, default: int, most: int) -> int:
    """A positive integer query parameter of at most ``most`` (``?limit=50``)."""
    value = request.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise RequestError(400, f"{name} must be an integer from 1 to {most}, got {value!r}", name)
    return int(value)


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
