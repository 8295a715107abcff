"""Headless Chromium for the browser tests: Debian's ``chromium``, driven by Playwright's
Python API (never a browser Playwright downloads).

The tests fail, never skip, where chromium is not installed: CI installs it (.ci/run).
Each page's script errors, console errors (a content security policy refusal is one)
and dialogs (``alert`` from injected markup) are collected, and a test fails if it
leaves any. Refused HTTP requests, which Chromium logs as console errors too, are left
out: the tests make them on purpose and check what the page says about them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# How Chromium's console words an HTTP error answer (401, 404...).
HTTP_ERROR = "Failed to load resource: the server responded with a status of"
# How long a page may take to show what a test waits for, in milliseconds.
SHOWN_WITHIN = 5000

# Browser tests run on uvloop, the server's default loop: they test the pages, and
# test_http_ws.py runs the WebSocket side on both loops.
BROWSER_LOOP = pytest.mark.asyncio(loop_factories=["uvloop"])


@dataclass
class Pages:
    """Opens pages in one browser and keeps what went wrong on any of them."""

    browser: Browser
    problems: list[str] = field(default_factory=list)

    async def open(self, url: str) -> Page:
        """A new page (its own session storage) at ``url``, watched for errors."""
        context = await self.browser.new_context()
        page = await context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        await page.goto(url)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(HTTP_ERROR):
            self.problems.append(f"console error: {message.text}")

    def _dialog(self, dialog: Dialog) -> None:
        self.problems.append(f"dialog: {dialog.message}")


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium; the test fails (never skips) without it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (as .ci/run does)")
    return CHROMIUM


@pytest.fixture
async def pages(chromium: Path) -> AsyncIterator[Pages]:
    """A headless Chromium for the test; fails the test if a page had an error."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        opened = Pages(browser)
        try:
            yield opened
        finally:
            await browser.close()
    assert not opened.problems, "\n".join(opened.problems)
