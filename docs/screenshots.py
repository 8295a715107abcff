"""Take the README's screenshots of the dashboard and the chat page.

    python docs/screenshots.py            # writes docs/dashboard.png and docs/chat.png

It starts a server with its HTTP side on free ports of 127.0.0.1, has a few TCP users
chat, come and go (one is kicked, one turned away while the server is full) for about a
minute so that the charts have something to draw, joins them from the chat page in
headless Chromium (Debian's ``chromium``, driven by Playwright), and photographs both
pages. Needs the ``test`` extra (Playwright) and chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Page, ViewportSize, async_playwright

from ackchat.http.app import AdminHttp
from ackchat.http.auth import AdminToken
from ackchat.server.assembly import ChatServer
from ackchat.settings import ServerSettings

CHROMIUM = "/usr/bin/chromium"
TOKEN = "screenshot-token"
VIEWPORT: ViewportSize = {"width": 1280, "height": 1000}
CHAT_VIEWPORT: ViewportSize = {"width": 1280, "height": 640}
HERE = Path(__file__).resolve().parent
# The users' reading tasks, kept until they end.
READING: set[asyncio.Task[None]] = set()


@dataclass
class User:
    """A TCP user, as with ``nc``: lines sent, and everything it is sent read and dropped."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def join(cls, port: int, name: str, *rooms: str) -> User:
        """Connect, take ``name`` and join ``rooms``."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        user = cls(reader, writer)
        reading = asyncio.ensure_future(user._drop_input())
        READING.add(reading)
        reading.add_done_callback(READING.discard)
        user.send(f"/nick {name}", *(f"/join {room}" for room in rooms))
        return user

    def send(self, *lines: str) -> None:
        """Send ``lines``, without waiting for their replies."""
        self.writer.write("".join(f"{line}\n" for line in lines).encode())

    async def _drop_input(self) -> None:
        """Read until the server closes the connection, then close this end too."""
        while await self.reader.read(65536):
            pass
        self.writer.close()


async def traffic(port: int, users: list[User], seconds: float) -> None:
    """Chat for ``seconds``: bursts of lines, users who come and go, one kick, one refusal."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    visitors = 0
    while (now := loop.time()) < end:
        burst = 40 + int(30 * abs((now % 30) - 15))
        for _ in range(burst):
            random.choice(users).send(f"line {random.randrange(10**6)}")
        if random.random() < 0.15:
            visitors += 1
            visitor = await User.join(port, f"visitor{visitors}", "#visitors")
            visitor.send("/say visitors just passing through", "exit")
        await asyncio.sleep(0.5)


async def shoot(settings: ServerSettings, out: Path, seconds: float) -> None:
    """Serve, chat for about ``seconds``, and photograph both pages into ``out``."""
    server = ChatServer(settings)
    await server.start()
    http = AdminHttp(server, AdminToken(TOKEN), lambda cause: False)
    await http.start()
    url = f"http://127.0.0.1:{http.port}"
    try:
        users = [
            await User.join(server.port, "alice", "#dev", "#lobby"),
            await User.join(server.port, "bob", "#dev"),
            await User.join(server.port, "carol", "#ops", "#lobby"),
            await User.join(server.port, "dave", "#ops"),
        ]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            dashboard = await browser.new_page(viewport=VIEWPORT)
            await dashboard.goto(url + "/")
            chat = await browser.new_page(viewport=CHAT_VIEWPORT)
            await chat.goto(url + "/chat")
            await type_lines(chat, "/nick erin", "/join dev", "/join lobby")
            await traffic(server.port, users, seconds / 2)
            await User.join(server.port, "mallory", "#lobby")
            await asyncio.sleep(0.5)
            await dashboard.fill("#token", TOKEN)
            await dashboard.click("#token-form button")
            await dashboard.click('#client-rows tr[data-name="mallory"] button')
            for number in range(3):
                await User.join(server.port, f"latecomer{number + 1}")
            await traffic(server.port, users, seconds / 2)
            users[0].send("/say dev the build is green again")
            await asyncio.sleep(0.3)
            users[1].send("/say dev nice, deploying after lunch", "/msg erin welcome aboard!")
            await asyncio.sleep(0.3)
            await type_lines(chat, "/say dev thanks! <b>tags</b> stay text", "/msg bob thank you")
            users[2].send("/all standup in five minutes", "/say lobby coffee first?")
            await asyncio.sleep(0.3)
            await type_lines(chat, "/members dev")
            await dashboard.screenshot(path=out / "dashboard.png")
            await chat.screenshot(path=out / "chat.png")
            await browser.close()
    finally:
        await server.shutdown()
        await http.close()


async def type_lines(page: Page, *lines: str) -> None:
    """Type each line into the chat page and press Enter."""
    for line in lines:
        await page.fill("#line", line)
        await page.press("#line", "Enter")
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description="Take the README's screenshots.")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the PNGs")
    parser.add_argument("--seconds", type=float, default=70.0, help="how long to chat first")
    options = parser.parse_args()
    settings = ServerSettings(host="127.0.0.1", port=0, http="127.0.0.1:0", max_clients=8)
    asyncio.run(shoot(settings, options.out, options.seconds))


if __name__ == "__main__":
    main()
