"""A test client for ``GET /ws``: the line protocol over WebSocket, one text frame per line."""

from __future__ import annotations

import aiohttp

from lineclient import Lines, bounded


class WebSocketLines(Lines):
    """Sends lines as frames and reads the server's frames as lines, blocks and the close."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, url: str, origin: str | None = None
    ) -> WebSocketLines:
        """Connect to ``url`` (``http://…/ws``), sending ``origin`` as a browser would."""
        headers = {"Origin": origin} if origin is not None else {}
        return cls(await bounded(session.ws_connect(url, headers=headers, autoclose=False)))

    async def send(self, text: str) -> None:
        await bounded(self.ws.send_str(text))

    async def read_line(self) -> str:
        message = await bounded(self.ws.receive())
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise EOFError(f"no more lines: {message}")
        assert isinstance(message.data, str)
        return message.data

    async def close_code(self) -> int | None:
        """Wait for the server's close frame (answering it); the code it gave."""
        message = await bounded(self.ws.receive())
        assert message.type is aiohttp.WSMsgType.CLOSE, message
        await bounded(self.ws.close())
        return self.ws.close_code

    async def close(self) -> None:
        await bounded(self.ws.close())
