"""The client on a terminal: a prompt with line editing and history, the server above it.

Lines from the server print above the prompt as they arrive, without disturbing what is
being typed. ``exit``, Ctrl-C and Ctrl-D end the session: the client says ``exit`` and
waits briefly for the goodbye.

A server that asks for a password gets the configured one first; otherwise, and after
each wrong one, the password is asked for without echo, until the server gives up.
Ctrl-C or Ctrl-D at that prompt leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from prompt_toolkit import PromptSession
from prompt_toolkit.history import DummyHistory, InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from ackchat.client.core import WrongPassword
from ackchat.client.errors import EXIT_OK
from ackchat.client.session import PasswordSource, Session, configured_password
from ackchat.settings import ClientSettings

# How long to wait for the goodbye after saying exit before closing anyway.
GOODBYE_TIMEOUT = 2.0


class PasswordPromptClosedError(Exception):
    """Ctrl-C or Ctrl-D at the password prompt: the user gives up signing in."""


def configured_then_asked(password: str) -> PasswordSource:
    """Give the configured password first, then ask on the terminal (never into history)."""
    prompt: PromptSession[str] = PromptSession(history=DummyHistory())
    tried_configured = False

    async def give(complaint: WrongPassword | None) -> str:
        nonlocal tried_configured
        if password and not tried_configured:
            tried_configured = True
            return password
        if complaint is not None:
            print(complaint.text)
        try:
            return await prompt.prompt_async("Password: ", is_password=True)
        except (KeyboardInterrupt, EOFError):
            raise PasswordPromptClosedError from None

    return give


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
    password = configured_password(settings)
    session = await Session.connect(settings)
    try:
        try:
            greeting = await session.greet(configured_then_asked(password))
        except PasswordPromptClosedError:
            return EXIT_OK
        prompt: PromptSession[str] = PromptSession(history=InMemoryHistory())
        with patch_stdout():
            print(greeting.text)
            return await session.converse(_send_typed_lines(session, prompt, greeting.name), print)
    finally:
        await session.close()
