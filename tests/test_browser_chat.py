"""The chat page in headless Chromium, against netcat-like TCP users: direct and room
messages both ways, markup shown as text (and never run), completion, and a lost
connection resumed."""

from __future__ import annotations

from playwright.async_api import expect

from adminhttp import AdminFactory, module_loop_admin_api
from browser import (
    BROWSER_MODULE_LOOP,
    SHOWN_WITHIN,
    Pages,
    chat,
    chromium,
    module_loop_connect,
    say,
    shared_browser,
    shared_pages,
)
from browserflows import exchange_direct_and_room_messages, markup_is_shown_as_text_on_both_pages
from conftest import ClientFactory
from lineclient import renamed

# The fixtures, imported to be used here: one browser for the module, and admin_api and
# connect in its event loop; each test still has its own pages, servers and clients.
__all__ = [
    "chromium",
    "module_loop_admin_api",
    "module_loop_connect",
    "shared_browser",
    "shared_pages",
]

pytestmark = BROWSER_MODULE_LOOP


async def test_a_browser_user_and_a_netcat_user_exchange_direct_and_room_messages(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api()
    page = await chat(shared_pages, admin.url, "webber")
    nc = await renamed(await connect(admin.server), "netty")
    await exchange_direct_and_room_messages(page, nc)


async def test_markup_from_users_is_shown_as_text_and_never_run_on_both_pages(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api()
    page = await chat(shared_pages, admin.url, "webber")
    nc = await renamed(await connect(admin.server), "netty")
    await markup_is_shown_as_text_on_both_pages(shared_pages, admin.url, page, nc, "lobby")


async def test_names_rooms_and_commands_complete_with_tab(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api()
    page = await chat(shared_pages, admin.url, "webber")
    nc = await renamed(await connect(admin.server), "netty")
    for room in ("ops", "lobby"):
        await nc.send(f"/join {room}")
        await nc.reply_block()
    await say(page, "who")
    await expect(page.locator("#log .block").last).to_contain_text("netty #lobby #ops")
    for typed, completed in (("/msg ne", "/msg netty "), ("/join #o", "/join #ops "), ("/h", "/h")):
        await page.fill("#line", typed)
        await page.press("#line", "Tab")
        await expect(page.locator("#line")).to_have_value(completed)
    await expect(page.locator("#hint")).to_have_text("/help  /history")


async def test_a_lost_connection_is_resumed_with_what_was_missed(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api()
    page = await chat(shared_pages, admin.url, "webber")
    await say(page, "/join lobby")
    nc = await renamed(await connect(admin.server), "netty")
    await nc.send("/join lobby")
    await nc.reply_block()
    (connection,) = [each for each in admin.server.connections if each.name == "webber"]
    assert connection.transport is not None
    connection.transport.abort()
    assert (await nc.read_line()).endswith(" #lobby *: webber lost the connection")
    assert await nc.ask("/say lobby while you were away") == "/say lobby while you were away ACK"
    resumed = page.locator("#log .block").last
    await expect(resumed).to_contain_text(
        "Resumed: you are webber again in #lobby; 1 missed messages follow", timeout=SHOWN_WITHIN
    )
    await expect(resumed.locator(".event.room .text")).to_have_text("while you were away")
    await expect(page.locator("#state")).to_have_text("connected")
    await expect(page.locator("#me")).to_have_text("webber #lobby")
    assert (await nc.read_line()).endswith(" #lobby *: webber is back")
    await say(page, "/say lobby back again")
    assert (await nc.read_line()).endswith(" #lobby webber: back again")


async def test_the_password_prompt_hides_the_password(
    admin_api: AdminFactory, shared_pages: Pages
) -> None:
    admin = await admin_api(password="open sesame", auth_delay=0.0)
    page = await shared_pages.open(admin.url + "/chat")
    await expect(page.locator("#log .notice").first).to_have_text(
        "Password required: send 'auth <password>'."
    )
    await expect(page.locator("#line")).to_have_attribute("type", "password")
    await say(page, "wrong guess")
    await expect(page.locator("#log .error").last).to_have_text(
        "ERROR wrong password (attempt 1 of 3)."
    )
    await say(page, "open sesame")
    await expect(page.locator("#state")).to_have_text("connected")
    await expect(page.locator("#line")).to_have_attribute("type", "text")
    await expect(page.locator("#log .mine")).to_have_text(["auth ••••••", "auth ••••••"])
    log = await page.locator("#log").inner_text()
    assert "sesame" not in log
    assert "guess" not in log
