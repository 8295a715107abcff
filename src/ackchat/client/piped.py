"""The client without a prompt: lines from a pipe or file, or the one line of ``--send``.

Piped, every line from the server goes to stdout as it arrives, unchanged (the greeting,
other clients' event lines, blocks without their ``.`` and un-stuffed), each input line
is sent once the last is answered, and at the end of input the client sends ``exit``
unless the input did, and exits 0 once the goodbye is in. With ``--send`` only the reply
to that line is printed and stdin is not read. A server that asks for a password gets
the configured one; there is no one to ask for another. A lost connection, or (piped) a
drain notice from the server, ends the client (exit code 5): a script is better told
than silently resumed. ``--send`` still takes the reply a draining server gives.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import TextIO

from ackchat.client.chat import ChatClient, say_exit
from ackchat.client.core import Event, line_text
from ackchat.client.display import terminal_safe
from ackchat.client.errors import EXIT_REFUSED, EXIT_USAGE, ClientError
from ackchat.client.session import Session, configured_only, configured_password
from ackchat.protocol.replies import ERROR_PREFIX
from ackchat.settings import ClientSettings

READ_CHUNK_BYTES = 65536


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


async def _send_lines(lines: InputLines, session: Session) -> None:
    """Send each input line after the reply to the one before; end with ``exit``.

    A drain notice ends it (:class:`~ackchat.client.errors.ServerDrainingError`, exit
    code 5) instead of the next line.
    """
    while not session.tracker.exit_sent:
        await session.replies_done()
        line = await session.unless_drained(lines.readline)
        await session.send(b"exit" if line is None else line)
    await session.replies_done()


def _printer(output: TextIO) -> Callable[[str], None]:
    """Print lines to ``output`` as they are, made safe only if it is a terminal."""
    safe = output.isatty()

    def write(text: str) -> None:
        print(terminal_safe(text) if safe else text, file=output, flush=True)

    return write


async def run_piped(settings: ClientSettings, input_fd: int, output: TextIO) -> int:
    """Talk to the server line by line from ``input_fd``, writing its lines to ``output``."""
    password = configured_password(settings)
    write = _printer(output)

    def show(event: Event) -> None:
        write(line_text(event))

    async with ChatClient(settings, reconnect=False, notify=write) as client:
        greeting = await client.open(configured_only(password))
        show(greeting)
        lines = InputLines(input_fd)
        try:
            return await client.run(partial(_send_lines, lines), show)
        finally:
            lines.close()


async def run_send(settings: ClientSettings, output: TextIO) -> int:
    """Send the ``--send`` line, print its reply, and say ``exit``; stdin is never read."""
    line = settings.send
    if "\n" in line or "\r" in line:
        raise ClientError("--send must be a single line.", EXIT_USAGE)
    write = _printer(output)
    answer = ""

    async def send_one(session: Session) -> None:
        nonlocal answer
        reply = await session.ask(line.encode())
        for event in reply:
            write(line_text(event))
        answer = line_text(reply[0]) if reply else ""
        await say_exit(session)

    async with ChatClient(settings, reconnect=False, notify=write) as client:
        await client.open(configured_only(configured_password(settings)))
        code = await client.run(send_one, lambda event: None)
    if answer.startswith(ERROR_PREFIX):
        raise ClientError(f"--send was refused: {answer.removeprefix(ERROR_PREFIX)}", EXIT_REFUSED)
    return code
