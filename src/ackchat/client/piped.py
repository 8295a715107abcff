"""The client when stdin is not a terminal: send each input line once the last is answered.

Every line from the server goes to stdout as it arrives (the greeting too; blocks without
their ``.`` and un-stuffed). At the end of input the client sends ``exit`` unless the
input did, and exits 0 once the goodbye is in. A server that asks for a password gets the
configured one; there is no one to ask for another.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from functools import partial
from typing import TextIO

from ackchat.client.core import WrongPassword
from ackchat.client.errors import EXIT_AUTH_FAILED, ClientError
from ackchat.client.session import PasswordSource, Session, configured_password
from ackchat.protocol.replies import ERROR_PREFIX
from ackchat.settings import ClientSettings

READ_CHUNK_BYTES = 65536

NO_PASSWORD = "the server asks for a password; give --password-file FILE or ACKCHAT_PASSWORD."


class InputLines:
    """Lines from a file descriptor (pipe, file or device), read without blocking the loop.

    Reads happen on demand in a daemon thread, so a read that never returns (the server
    closed while stdin is still open) cannot hold up the exit as an executor thread
    would. ``os.read`` takes no lock that interpreter shutdown would wait for.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._at_end = False
        self._requests: queue.SimpleQueue[asyncio.Future[bytes] | None] = queue.SimpleQueue()
        threading.Thread(target=self._read_on_request, name="ackchat-input", daemon=True).start()

    async def readline(self) -> bytes | None:
        """The next line without its line ending (LF or CRLF), or None at the end of input."""
        scanned = 0
        while (end := self._buffer.find(b"\n", scanned)) < 0 and not self._at_end:
            scanned = len(self._buffer)
            chunk = await self._read_chunk()
            self._at_end = not chunk
            self._buffer += chunk
        if end < 0:
            if not self._buffer:
                return None
            end = len(self._buffer)  # The last line of the input has no line ending.
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line.removesuffix(b"\r")

    def close(self) -> None:
        """Let the reading thread end once any read in progress returns."""
        self._requests.put(None)

    async def _read_chunk(self) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._requests.put(future)
        return await future

    def _read_on_request(self) -> None:
        while (future := self._requests.get()) is not None:
            try:
                deliver = partial(_set_result, future, os.read(self._fd, READ_CHUNK_BYTES))
            except OSError as error:
                deliver = partial(_set_exception, future, error)
            try:
                future.get_loop().call_soon_threadsafe(deliver)
            except RuntimeError:
                return  # The event loop is closed: nobody is waiting for input any more.


def _set_result(future: asyncio.Future[bytes], chunk: bytes) -> None:
    if not future.done():
        future.set_result(chunk)


def _set_exception(future: asyncio.Future[bytes], error: OSError) -> None:
    if not future.done():
        future.set_exception(error)


async def _send_lines(session: Session, lines: InputLines) -> None:
    """Send each input line after the reply to the one before; end with ``exit``."""
    while not session.tracker.exit_sent:
        await session.replies_done()
        line = await lines.readline()
        await session.send(b"exit" if line is None else line)
    await session.replies_done()


def configured_only(password: str) -> PasswordSource:
    """Give ``password`` once: without one, or once it is wrong, the client gives up."""

    async def give(complaint: WrongPassword | None) -> str:
        if complaint is not None:
            # The same password again cannot fare better: stop at the server's answer.
            raise ClientError(complaint.text.removeprefix(ERROR_PREFIX), EXIT_AUTH_FAILED)
        if not password:
            raise ClientError(NO_PASSWORD, EXIT_AUTH_FAILED)
        return password

    return give


async def run_piped(settings: ClientSettings, input_fd: int, output: TextIO) -> int:
    """Talk to the server line by line from ``input_fd``, writing its lines to ``output``."""
    password = configured_password(settings)
    session = await Session.connect(settings)
    try:
        greeting = await session.greet(configured_only(password))
        show = partial(print, file=output, flush=True)
        lines = InputLines(input_fd)
        try:
            show(greeting.text)
            return await session.converse(_send_lines(session, lines), show)
        finally:
            lines.close()
    finally:
        await session.close()
