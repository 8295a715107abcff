"""A chat server with its admin API on 127.0.0.1 (ephemeral ports), and a client for it.

The ``admin_api`` fixture starts both in the test's event loop, as ``ackchat serve
--http`` runs them in one; a drain asked for over the API is recorded (and started on
the server) instead of ending a process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from ackchat.backend.interface import Backend
from ackchat.http.app import AdminHttp
from ackchat.http.auth import AdminToken
from ackchat.server.assembly import ChatServer
from conftest import TEST_SETTINGS
from lineclient import WAIT

TOKEN = "s3cret-admin-token"


@dataclass
class AdminUnderTest:
    """A server, its admin API, and an HTTP client session to call it."""

    server: ChatServer
    http: AdminHttp
    session: aiohttp.ClientSession
    # The reasons given for each drain the API asked for, and the drains started.
    drains: list[str] = field(default_factory=list)
    draining: list[asyncio.Task[bool]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"

    async def call(
        self, method: str, path: str, body: object = None, token: str | None = TOKEN
    ) -> tuple[int, Any]:
        """Send one request; its status and JSON answer."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def metrics(self, token: str | None = None) -> tuple[int, str]:
        """``GET /metrics``: its status and text."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.get(self.url + "/metrics", headers=headers) as response:
            return response.status, await response.text()


AdminFactory = Callable[..., Coroutine[Any, Any, AdminUnderTest]]


@asynccontextmanager
async def admin_servers() -> AsyncIterator[AdminFactory]:
    """Start servers (on ``backend`` if given) with settings overrides and their admin API;
    all are closed after."""
    started: list[AdminUnderTest] = []

    async def start(backend: Backend | None = None, **overrides: Any) -> AdminUnderTest:
        server = ChatServer(replace(TEST_SETTINGS, http="127.0.0.1:0", **overrides), backend)
        await server.start()

        def drain(cause: str) -> bool:
            if admin.drains:
                return False
            admin.drains.append(cause)
            admin.draining.append(asyncio.ensure_future(server.drain()))
            return True

        http = AdminHttp(server, AdminToken(TOKEN), drain)
        await http.start()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT))
        admin = AdminUnderTest(server, http, session)
        started.append(admin)
        return admin

    yield start
    for admin in started:
        await admin.session.close()
        for task in admin.draining:
            task.cancel()
        if admin.draining:
            await asyncio.wait(admin.draining)
        # As ackchat serve stops: the chat server (WebSocket clients too), then the HTTP side.
        await admin.server.shutdown()
        await admin.http.close()


@pytest.fixture
async def admin_api() -> AsyncIterator[AdminFactory]:
    """Servers with their admin API (:func:`admin_servers`), closed after the test."""
    async with admin_servers() as start:
        yield start


@pytest_asyncio.fixture(name="admin_api", loop_scope="module")
async def module_loop_admin_api() -> AsyncIterator[AdminFactory]:
    """``admin_api`` for a module whose tests share its event loop (and so one browser,
    ``browser.shared_pages``): the servers are still the test's own, closed after it."""
    async with admin_servers() as start:
        yield start
