"""Browser flows run both on one server (test_browser_chat.py) and across a cluster
(test_browser_cluster.py): a chat page user ``webber`` and a netcat-style user
``netty``, on whichever servers the caller connected them to."""

from __future__ import annotations

from playwright.async_api import Page, expect

from browser import MARKUP, SHOWN_WITHIN, Pages, dashboard, say
from lineclient import LineClient


async def exchange_direct_and_room_messages(page: Page, nc: LineClient) -> None:
    """Direct messages both ways, then room messages both ways in ``#lobby``, each shown
    on the page as the event it is (direct, presence, room)."""
    await say(page, "/msg netty hello from the web")
    assert (await nc.read_line()).endswith(" direct webber>netty: hello from the web")
    await expect(page.locator("#log .reply").last).to_have_text("/msg netty hello from the web ACK")
    assert await nc.ask("/msg webber hello from netcat") == "/msg webber hello from netcat ACK"
    direct = page.locator("#log .event.direct").last
    await expect(direct.locator(".from")).to_have_text("netty → webber")
    await expect(direct.locator(".text")).to_have_text("hello from netcat")

    await say(page, "/join lobby")
    await expect(page.locator("#log .block").last).to_have_text("joined #lobby: 1 member")
    await nc.send("/join lobby")
    assert (await nc.reply_block())[0] == "joined #lobby: 2 members"
    presence = page.locator("#log .event.presence").last
    await expect(presence.locator(".text")).to_have_text("netty joined")
    assert await nc.ask("/say lobby hi room") == "/say lobby hi room ACK"
    room = page.locator("#log .event.room").last
    await expect(room.locator(".scope")).to_have_text("#lobby")
    await expect(room.locator(".from")).to_have_text("netty")
    await expect(room.locator(".text")).to_have_text("hi room")
    await say(page, "/say lobby and back")
    assert (await nc.read_line()).endswith(" #lobby webber: and back")
    await expect(page.locator("#me")).to_have_text("webber #lobby")


async def markup_is_shown_as_text_on_both_pages(
    pages: Pages, url: str, page: Page, nc: LineClient, room: str
) -> None:
    """Markup sent to ``room``, directly and to all is shown as text on the chat page and
    the dashboard (of the server at ``url``), and never run there."""
    await say(page, f"/join {room}")
    await expect(page.locator("#log .block").last).to_have_text(f"joined #{room}: 1 member")
    await nc.send(f"/join {room}")
    await nc.reply_block()
    for line in (f"/say {room} {MARKUP}", f"/msg webber {MARKUP}", f"/all {MARKUP}"):
        assert await nc.ask(line) == f"{line} ACK"
    for kind in ("room", "direct", "all"):
        shown = page.locator(f"#log .event.{kind} .text").last
        await expect(shown).to_have_text(MARKUP)
    await say(page, f"/say {room} {MARKUP}")
    assert (await nc.read_line()).endswith(f" #{room} webber: {MARKUP}")
    await expect(page.locator("#log .reply").last).to_have_text(f"/say {room} {MARKUP} ACK")
    assert await page.locator("#log img, #log script").count() == 0
    assert await page.evaluate("window.injected") is None

    board = await dashboard(pages, url)
    await expect(board.locator("#room-list li")).to_have_text(f"#{room} (2) netty, webber")
    await board.fill("#search", MARKUP)
    await expect(board.locator("#clients-more")).to_have_text(
        f"No connected client matches “{MARKUP}”.", timeout=SHOWN_WITHIN
    )
    assert await board.locator("img, body script:not([src])").count() == 0
    assert await board.evaluate("window.injected") is None
