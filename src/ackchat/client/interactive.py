"""The client on a terminal: a prompt with line editing, history and completion, chat above it.

Lines from the server print above the prompt as they arrive, styled (see
:mod:`ackchat.client.display`), without disturbing what is being typed. The prompt shows
our current name and completes command words, names and rooms with Tab. ``exit``, Ctrl-C
and Ctrl-D end the session: the client says ``exit`` and waits briefly for the goodbye.
A lost connection, or a server that drains and asks its clients to reconnect, is
restored and resumed while the prompt stays up; lines typed meanwhile are sent once it
is back.

The input history outlives the run, in a private file without secrets (see
:mod:`ackchat.client.history`).

A server that asks for a password gets the configured one first; otherwise, and after
each wrong one, the password is asked for until the server gives up. That prompt echoes
nothing, not even an asterisk per character (which would tell the password's length),
and keeps no history. Ctrl-C or Ctrl-D at that prompt leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from functools import partial

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import DummyHistory
from prompt_toolkit.input import Input
from prompt_toolkit.layout.processors import Processor, Transformation, TransformationInput
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style

from ackchat.client.chat import ChatClient, say_exit
from ackchat.client.core import Event, WrongPassword
from ackchat.client.directory import ChatDirectory
from ackchat.client.display import ALERT, INFO, Fragments, fragments, terminal_safe
from ackchat.client.errors import EXIT_OK
from ackchat.client.history import open_history
from ackchat.client.session import PasswordSource, Session, configured_password
from ackchat.errors import AckchatError
from ackchat.protocol.commands import Exit, parse_command
from ackchat.settings import ClientSettings

STYLE = Style.from_dict(
    {
        "time": "ansibrightblack",
        "room": "ansicyan",
        "direct": "ansimagenta",
        "all": "ansiyellow",
        "presence": "ansibrightblack italic",
        "sender": "bold",
        "alert": "ansired",
        "info": "bold",
    }
)


class PasswordPromptClosedError(AckchatError):
    """Ctrl-C or Ctrl-D at the password prompt: the user gives up signing in."""


class HiddenInput(Processor):
    """Shows none of what is typed, and keeps the cursor where the input starts.

    prompt_toolkit's ``is_password`` shows an asterisk per character; this shows nothing,
    as ``getpass`` does, while the prompt still runs on the event loop (the server may
    close the connection while the password is being typed).
    """

    def apply_transformation(self, transformation_input: TransformationInput) -> Transformation:
        return Transformation([], source_to_display=_at_start, display_to_source=_at_start)


def _at_start(position: int) -> int:
    return 0


def password_prompt(
    keyboard: Input | None = None, screen: Output | None = None
) -> PromptSession[str]:
    """The ``Password:`` prompt (on the terminal unless told otherwise): no echo, no history."""
    return PromptSession(
        "Password: ",
        input_processors=[HiddenInput()],
        history=DummyHistory(),
        input=keyboard,
        output=screen,
    )


def configured_then_asked(password: str) -> PasswordSource:
    """Give the configured password first, then ask on the terminal (never into history)."""
    prompt = password_prompt()
    tried_configured = False

    async def give(complaint: WrongPassword | None) -> str:
        nonlocal tried_configured
        if password and not tried_configured:
            tried_configured = True
            return password
        if complaint is not None:
            print(terminal_safe(complaint.text))
        try:
            return await prompt.prompt_async()
        except (KeyboardInterrupt, EOFError):
            raise PasswordPromptClosedError from None

    return give


class ChatCompleter(Completer):
    """Tab completion from a :class:`ChatDirectory`: commands, then names or rooms."""

    def __init__(self, directory: ChatDirectory, own_name: Callable[[], str]) -> None:
        self._directory = directory
        self._own_name = own_name

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        typed = document.text_before_cursor
        partial_word = typed.rsplit(" ", 1)[-1]
        for word in self._directory.complete(typed, self._own_name()):
            yield Completion(word, start_position=-len(partial_word))


def _is_exit(line: str) -> bool:
    try:
        return isinstance(parse_command(line.encode()), Exit)
    except ValueError:
        return False


async def _read_typed(
    prompt: PromptSession[str], typed: asyncio.Queue[str], stop: asyncio.Event
) -> None:
    """Queue what the user types until ``exit``, Ctrl-C or Ctrl-D (which stand for exit)."""
    while True:
        try:
            text = await prompt.prompt_async()
        except (KeyboardInterrupt, EOFError):
            text = "exit"
        # A paste can hold several lines; each is sent on its own.
        for line in text.split("\n"):
            typed.put_nowait(line)
            if _is_exit(line):
                stop.set()
                return


async def _send_typed(typed: asyncio.Queue[str], session: Session) -> None:
    """Send the queued lines on this connection until ``exit``; then await the goodbye.

    A drain notice ends the wait for the next line: the lines queued then go to the next
    connection.
    """
    while not session.tracker.exit_sent:
        await session.send((await session.unless_drained(typed.get)).encode())
    await say_exit(session)


def _print(parts: Fragments) -> None:
    if parts:
        print_formatted_text(FormattedText(parts), style=STYLE)


async def run_interactive(settings: ClientSettings) -> int:
    """Talk to the server from the terminal until ``exit`` or until the server closes."""
    password = configured_password(settings)
    directory = ChatDirectory()
    stop = asyncio.Event()

    def notify(text: str) -> None:
        _print([(INFO, f"* {terminal_safe(text)}")])

    def warn(text: str) -> None:
        _print([(ALERT, f"* {terminal_safe(text)}")])

    def show(event: Event) -> None:
        directory.observe(event)
        _print(fragments(event))

    async with ChatClient(
        settings, reconnect=settings.reconnect, notify=notify, stop=stop
    ) as client:
        try:
            greeting = await client.open(configured_then_asked(password))
        except PasswordPromptClosedError:
            return EXIT_OK
        prompt: PromptSession[str] = PromptSession(
            message=lambda: f"{client.name}> ",
            history=open_history(settings.history_file, warn),
            completer=ChatCompleter(directory, lambda: client.name),
        )
        typed: asyncio.Queue[str] = asyncio.Queue()
        with patch_stdout():
            show(greeting)
            reading = asyncio.ensure_future(_read_typed(prompt, typed, stop))
            try:
                return await client.run(partial(_send_typed, typed), show)
            finally:
                reading.cancel()
                await asyncio.wait({reading})
