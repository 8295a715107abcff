"""The dashboard in headless Chromium: it shows TCP clients as they come, kicks one (which
is told why), raises max_clients so that one more is admitted, and keeps its list
bounded and searchable."""

from __future__ import annotations

import re

from playwright.async_api import expect

from ackchat.protocol import replies
from adminhttp import TOKEN, AdminFactory, AdminUnderTest, module_loop_admin_api
from browser import (
    BROWSER_MODULE_LOOP,
    SHOWN_WITHIN,
    Pages,
    chromium,
    dashboard,
    module_loop_connect,
    shared_browser,
    shared_pages,
)
from conftest import ClientFactory
from lineclient import LineClient

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


async def greeted(connect: ClientFactory, admin: AdminUnderTest) -> LineClient:
    client = await connect(admin.server)
    await client.greeting()
    return client


async def test_three_tcp_clients_are_shown_within_a_second(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api()
    page = await dashboard(shared_pages, admin.url)
    clients = [await greeted(connect, admin) for _ in range(3)]
    rows = page.locator("#client-rows tr")
    await expect(rows).to_have_count(3, timeout=1000)
    for index, client in enumerate(clients):
        row = rows.nth(index)
        await expect(row.locator("td").nth(0)).to_have_text(f"Client0{index + 1}")
        await expect(row.locator("td").nth(1)).to_have_text(f"127.0.0.1:{client.local_port}")
    await expect(page.locator("#connected")).to_have_text("3")
    await expect(page.locator("#max-clients-now")).to_have_text("3")


async def test_the_page_kicks_a_client_which_sees_why(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api()
    clients = [await greeted(connect, admin) for _ in range(3)]
    page = await dashboard(shared_pages, admin.url)
    kick = page.locator('#client-rows tr[data-name="Client02"] button')
    await kick.click()
    await expect(page.locator("#result")).to_have_text("Enter the admin token first.")
    await page.fill("#token", "wrong")
    await page.click("#token-form button")
    await kick.click()
    await expect(page.locator("#result")).to_have_text("Refused: the admin token is wrong.")
    await page.fill("#token", TOKEN)
    await page.click("#token-form button")
    await kick.click()
    await expect(page.locator("#result")).to_have_text("Kicked Client02.")
    assert await clients[1].read_line() == replies.KICKED
    assert await clients[1].at_eof()
    await expect(page.locator("#client-rows tr")).to_have_count(2)
    await expect(page.locator("#departure-list li")).to_have_text(
        [re.compile(r"\d\d:\d\d:\d\d Client02 kicked")]
    )


async def test_the_page_raises_max_clients_and_a_fourth_client_is_admitted(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api()
    for _ in range(3):
        await greeted(connect, admin)
    turned_away = await connect(admin.server)
    assert await turned_away.read_line() == replies.SERVER_FULL
    page = await dashboard(shared_pages, admin.url, TOKEN)
    await expect(page.locator("#max-clients")).to_have_value("3")
    await page.fill("#max-clients", "4")
    await page.click("#max-form button")
    await expect(page.locator("#result")).to_have_text("max_clients 3 → 4")
    fourth = await connect(admin.server)
    assert await fourth.greeting() == "Client04"
    await expect(page.locator("#client-rows tr")).to_have_count(4)
    await expect(page.locator("#max-clients-now")).to_have_text("4")
    await page.fill("#max-clients", "4")
    await page.click("#max-form button")
    await expect(page.locator("#result")).to_have_text("max_clients stays at 4")


async def test_the_list_is_bounded_and_searchable(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api(max_clients=150)
    for _ in range(150):
        await greeted(connect, admin)
    page = await dashboard(shared_pages, admin.url)
    await expect(page.locator("#client-rows tr")).to_have_count(100)
    await expect(page.locator("#clients-more")).to_have_text(
        "Showing 100 of 150: search to narrow."
    )
    await page.fill("#search", "client14")
    await expect(page.locator("#client-rows tr")).to_have_count(11, timeout=SHOWN_WITHIN)
    await expect(page.locator("#client-rows tr").first.locator("td").first).to_have_text("Client14")
    markup = '<img src=x onerror="alert(1)">'
    await page.fill("#search", markup)
    await expect(page.locator("#clients-more")).to_have_text(
        f"No connected client matches “{markup}”.", timeout=SHOWN_WITHIN
    )
    assert await page.locator("img").count() == 0


async def test_with_admin_read_token_the_dashboard_shows_nothing_without_the_token(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api(admin_read_token=True)
    await greeted(connect, admin)
    page = await shared_pages.open(admin.url + "/")
    await expect(page.locator("#live")).to_have_text("reads need the admin token: enter it above")
    await expect(page.locator("#client-rows tr")).to_have_count(0)
    await page.fill("#token", TOKEN)
    await page.click("#token-form button")
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#client-rows tr")).to_have_count(1)


async def test_an_update_rebuilds_only_the_parts_that_changed(
    admin_api: AdminFactory, connect: ClientFactory, shared_pages: Pages
) -> None:
    admin = await admin_api()
    client = await greeted(connect, admin)
    await client.send("exit")
    page = await dashboard(shared_pages, admin.url)
    await expect(page.locator("#departure-list li")).to_have_count(1)
    # Mark the elements shown now; the feed pushes every two seconds at least.
    await page.evaluate(
        """() => { window.marked = ["#limit-list dt", "#departure-list li"]
            .map((selector) => document.querySelector(selector)); }"""
    )
    shown = await page.locator("#updated").inner_text()
    await expect(page.locator("#updated")).not_to_have_text(shown, timeout=SHOWN_WITHIN)
    assert await page.evaluate("window.marked.map((element) => element.isConnected)") == [
        True,
        True,
    ]
    # A change is shown: the next departure rebuilds the list.
    other = await greeted(connect, admin)
    await other.send("exit")
    await expect(page.locator("#departure-list li")).to_have_count(2, timeout=SHOWN_WITHIN)
    assert await page.evaluate("window.marked[1].isConnected") is False
