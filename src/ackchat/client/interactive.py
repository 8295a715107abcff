"""The client on a terminal: a prompt with line editing and history, the server above it.

Lines from the server print above the prompt as they arrive, without disturbing what is
being typed. ``exit``, Ctrl-C and Ctrl-D end the session: the client says ``exit`` and
waits briefly for the goodbye.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from prompt_toolkit import PromptSession
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from ackchat.client.session import Session
from ackchat.settings import ClientSettings

# How long to wait for the goodbye after saying exit before closing anyway.
GOODBYE_TIMEOUT = 2.0


async def _send_typed_lines(session: Session, prompt: PromptSession[str], name: str) -> None:
    """Send what the user types until ``exit``, Ctrl-C or Ctrl-D; then await the goodbye."""
    # A paste can hold several lines; each is sent on its own.
    typed: deque[str] = deque()
    while not session.tracker.exit_sent:
        if not typed:
            try:
                typed.extend((await prompt.prompt_async(f"{name}> ")).split("\n"))
            except (KeyboardInterrupt, EOFError):
                typed.append("exit")
        await session.send(typed.popleft().encode())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(session.replies_done(), GOODBYE_TIMEOUT)


async def run_interactive(settings: ClientSettings) -> int:
    """Talk to the server from the terminal until ``exit`` or until the server closes."""
    session, greeting = await Session.open(settings)
    try:
        prompt: PromptSession[str] = PromptSession(history=InMemoryHistory())
        with patch_stdout():
            print(greeting.text)
            return await session.converse(_send_typed_lines(session, prompt, greeting.name), print)
    finally:
        await session.close()
