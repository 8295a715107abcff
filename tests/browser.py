"""Headless Chromium for the browser tests: Debian's ``chromium``, driven by Playwright's
Python API (never a browser Playwright downloads), and the steps the tests take on the
two pages.

The tests fail, never skip, where chromium is not installed: CI installs it (.ci/run).
Each page's script errors, console errors (a content security policy refusal is one)
and dialogs (``alert`` from injected markup) are collected, and a test fails if it
leaves any. Refused HTTP requests, which Chromium logs as console errors too, are left
out: the tests make them on purpose and check what the page says about them.

``pages`` launches a browser for one test; a module whose tests share an event loop
(and a cluster) uses ``shared_pages`` instead, one browser for the module and a fresh
set of pages, closed after each test, for every test. Such a module's other async
fixtures must run in that loop too: ``module_loop_connect`` (here) and
``adminhttp.module_loop_admin_api`` are ``connect`` and ``admin_api`` for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    async_playwright,
    expect,
)

from ackchat.server.assembly import ChatServer
from conftest import ClientFactory
from lineclient import LineClient

CHROMIUM = Path("/usr/bin/chromium")
# How Chromium's console words an HTTP error answer (401, 404...).
HTTP_ERROR = "Failed to load resource: the server responded with a status of"
# How long a page may take to show what a test waits for, in milliseconds.
SHOWN_WITHIN = 5000
# A message that would run script if a page put it in as HTML.
MARKUP = '<script>window.injected = 1</script><img src=x onerror="window.injected = 2">'

# Browser tests run on uvloop, the server's default loop: they test the pages, and
# test_http_ws.py runs the WebSocket side on both loops.
BROWSER_LOOP = pytest.mark.asyncio(loop_factories=["uvloop"])
# The same for a module whose tests share one event loop, and so one browser.
BROWSER_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module", loop_factories=["uvloop"])


@dataclass
class Pages:
    """Opens pages in one browser and keeps what went wrong on any of them."""

    browser: Browser
    problems: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    async def open(self, url: str) -> Page:
        """A new page (its own session storage) at ``url``, watched for errors."""
        context = await self.browser.new_context()
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        await page.goto(url)
        return page

    async def close(self) -> None:
        """Close every page opened (their WebSockets and feeds with them)."""
        for context in self.contexts:
            await context.close()
        self.contexts.clear()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(HTTP_ERROR):
            self.problems.append(f"console error: {message.text}")

    def _dialog(self, dialog: Dialog) -> None:
        self.problems.append(f"dialog: {dialog.message}")


@asynccontextmanager
async def launched(chromium: Path) -> AsyncIterator[Browser]:
    """A headless ``chromium``, closed after."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def watched(browser: Browser) -> AsyncIterator[Pages]:
    """Pages of ``browser``, closed after; fails if a page had an error."""
    opened = Pages(browser)
    try:
        yield opened
    finally:
        await opened.close()
    assert not opened.problems, "\n".join(opened.problems)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; the test fails (never skips) without it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (as .ci/run does)")
    return CHROMIUM


@pytest.fixture
async def pages(chromium: Path) -> AsyncIterator[Pages]:
    """A headless Chromium for the test; fails the test if a page had an error."""
    async with launched(chromium) as browser, watched(browser) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_browser(chromium: Path) -> AsyncIterator[Browser]:
    """A headless Chromium for a module's tests (run with ``BROWSER_MODULE_LOOP``)."""
    async with launched(chromium) as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def shared_pages(shared_browser: Browser) -> AsyncIterator[Pages]:
    """Pages of the module's browser for one test, closed after it; fails the test if a
    page had an error."""
    async with watched(shared_browser) as opened:
        yield opened


@pytest_asyncio.fixture(name="connect", loop_scope="module")
async def module_loop_connect() -> AsyncIterator[ClientFactory]:
    """conftest's ``connect`` for a module run with ``BROWSER_MODULE_LOOP``: line clients
    opened in the module's event loop, every one closed after the test."""
    clients: list[LineClient] = []

    async def open_client(server: ChatServer) -> LineClient:
        client = await LineClient.open(server.port)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


async def say(page: Page, line: str) -> None:
    """Type ``line`` on the chat page and press Enter."""
    await page.fill("#line", line)
    await page.press("#line", "Enter")


async def chat(pages: Pages, url: str, name: str) -> Page:
    """The chat page of the server at ``url``, greeted and renamed to ``name``."""
    page = await pages.open(url + "/chat")
    await expect(page.locator("#state")).to_have_text("connected", timeout=SHOWN_WITHIN)
    await say(page, f"/nick {name}")
    await expect(page.locator("#me")).to_have_text(name)
    return page


async def dashboard(pages: Pages, url: str, token: str | None = None) -> Page:
    """The dashboard of the server at ``url``, once its feed is live (with the admin
    token entered, if given)."""
    page = await pages.open(url + "/")
    await expect(page.locator("#live")).to_have_text("live", timeout=SHOWN_WITHIN)
    if token is not None:
        await page.fill("#token", token)
        await page.click("#token-form button")
        await expect(page.locator("#token-state")).to_have_text("token set (this tab only)")
    return page
