"""The client as a chat client against a real server: the ``ackchat connect`` command with
--name, --room and --send, event lines in piped mode, and resuming after a lost connection."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest

from ackchat.client import EXIT_OK, EXIT_REFUSED
from ackchat.client.chat import ChatClient, say_exit
from ackchat.client.core import ChatLine, Event, ReplyLine, line_text
from ackchat.client.session import Session, configured_only
from ackchat.protocol.replies import RESUME_PREFIX
from ackchat.server.assembly import ChatServer
from ackchat.settings import ClientSettings
from conftest import ClientFactory
from lineclient import LineClient, bounded, eventually
from test_client_piped import WELCOME, ClientCommand, ackchat, finish, one_loop, shown
from test_client_security import Terminal

EVENT = r"@\d+ \S+ "
__all__ = ["ackchat"]  # The fixture, imported to be used here.


async def named(client: LineClient, name: str, room: str = "") -> None:
    """Greet, take ``name``, and join ``room`` if given."""
    await client.greeting()
    assert await client.ask(f"/nick {name}") == f"You are now {name}."
    if room:
        await client.send(f"/join {room}")
        assert (await client.read_block())[0].startswith(f"joined #{room}:")


async def next_matching(client: LineClient, pattern: str) -> str:
    """The next line matching ``pattern`` (others, such as presence lines, are skipped)."""
    while not re.fullmatch(pattern, text := await client.read_line()):
        pass
    return text


async def until_shown(events: list[Event], pattern: str) -> str:
    """The first event shown whose line matches ``pattern``, once there is one."""

    def found() -> list[str]:
        return [text for e in events if re.fullmatch(pattern, text := line_text(e))]

    async def probe() -> bool:
        return bool(found())

    await eventually(probe, f"a line like {pattern!r} was shown")
    return found()[0]


def cut_off(server: ChatServer, name: str) -> None:
    """Drop ``name``'s connection as a network failure would: no exit, no goodbye."""
    (connection,) = [c for c in server.connections if c.name == name]
    assert connection.transport is not None
    connection.transport.abort()


class Typing:
    """What a front end does on each connection: send the lines typed, up to ``exit``."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[bytes] = asyncio.Queue()

    async def __call__(self, session: Session) -> None:
        while not session.tracker.exit_sent:
            await session.send(await session.unless_drained(self.lines.get))
        await say_exit(session)


@one_loop
async def test_send_with_name_and_room_says_one_line_and_exits(
    server: ChatServer, connect: ClientFactory, ackchat: ClientCommand
) -> None:
    observer = await connect(server)
    await named(observer, "watcher", "ops")
    process = await ackchat.start(
        server.port, "--name", "bot", "--room", "ops", "--send", "/say ops deploy done"
    )
    code, lines, errors = await finish(process)
    assert (code, lines, errors) == (EXIT_OK, ["/say ops deploy done ACK"], "")
    assert (await next_matching(observer, f"{EVENT}#ops bot: .*")).endswith("bot: deploy done")


@one_loop
async def test_a_taken_name_exits_7_with_one_line(
    server: ChatServer, connect: ClientFactory, ackchat: ClientCommand
) -> None:
    holder = await connect(server)
    await named(holder, "alice")
    code, lines, errors = await finish(
        await ackchat.start(server.port, "--name", "Alice", "--send", "hi")
    )
    assert (code, lines) == (EXIT_REFUSED, [])
    assert errors == "ackchat: --name Alice was refused: name taken: Alice\n"


@one_loop
async def test_an_invalid_name_exits_7_in_piped_mode_too(
    server: ChatServer, ackchat: ClientCommand
) -> None:
    code, lines, errors = await finish(await ackchat.start(server.port, "--name", "Client07"))
    assert code == EXIT_REFUSED
    assert lines[:3] == WELCOME
    assert errors.startswith("ackchat: --name Client07 was refused: invalid name 'Client07'")


@one_loop
async def test_a_name_with_a_space_exits_7_saying_what_is_wrong_with_it(
    server: ChatServer, ackchat: ClientCommand
) -> None:
    code, lines, errors = await finish(
        await ackchat.start(server.port, "--name", "bad name", "--send", "hi")
    )
    assert (code, lines) == (EXIT_REFUSED, [])
    assert errors == (
        "ackchat: --name 'bad name' was refused: invalid name 'bad name': a name cannot contain"
        " spaces; use 1 to 20 letters, digits, '_' or '-', starting with a letter\n"
    )


@one_loop
async def test_a_send_answered_with_an_error_prints_it_and_exits_7(
    server: ChatServer, ackchat: ClientCommand
) -> None:
    code, lines, errors = await finish(await ackchat.start(server.port, "--send", "/msg nobody hi"))
    assert (code, lines) == (EXIT_REFUSED, ["ERROR no such client: nobody"])
    assert errors == "ackchat: --send was refused: no such client: nobody\n"


@one_loop
async def test_piped_mode_prints_event_lines_as_they_come_between_replies(
    server: ChatServer, connect: ClientFactory, ackchat: ClientCommand
) -> None:
    process = await ackchat.start(server.port, "--name", "carol", "--room", "dev")
    assert process.stdin is not None
    assert process.stdout is not None

    stdout = process.stdout

    async def output_line() -> str:
        return (await bounded(stdout.readline())).decode().removesuffix("\n")

    assert shown([await output_line() for _ in WELCOME]) == WELCOME
    assert await output_line() == "You are now carol."
    assert await output_line() == "joined #dev: 1 member"
    sender = await connect(server)
    await named(sender, "bob")
    assert await sender.ask("/msg carol hello there") == "/msg carol hello there ACK"
    assert re.fullmatch(f"{EVENT}direct bob>carol: hello there", await output_line())
    process.stdin.write(b"ping\n")
    assert await output_line() == "ping ACK"
    process.stdin.close()
    code, lines, errors = await finish(process)
    assert (code, lines, errors) == (EXIT_OK, ["Goodbye, carol."], "")


async def test_a_lost_connection_is_resumed_with_the_name_and_the_missed_messages(
    server: ChatServer, connect: ClientFactory
) -> None:
    events: list[Event] = []
    notes: list[str] = []
    typing = Typing()
    come_back = asyncio.Event()

    async def wait(delay: float) -> None:
        await come_back.wait()

    settings = ClientSettings(port=server.port, name="alice", room="dev")
    async with ChatClient(
        settings, reconnect=True, notify=notes.append, wait=wait, jitter=lambda: 0.0
    ) as client:
        await client.open(configured_only(""))
        running = asyncio.ensure_future(client.run(typing, events.append))
        await until_shown(events, "joined #dev: 1 member")
        friend = await connect(server)
        await named(friend, "bob", "dev")
        cut_off(server, "alice")
        await next_matching(friend, f"{EVENT}#dev \\*: alice lost the connection")
        await friend.send("/msg alice while you were away")
        assert await friend.reply() == "/msg alice while you were away ACK"
        come_back.set()
        await until_shown(
            events, r"Resumed: you are alice again in #dev; \d+ missed messages follow"
        )
        await until_shown(events, f"{EVENT}direct bob>alice: while you were away")
        assert client.name == "alice"
        typing.lines.put_nowait(b"/say dev back")
        await next_matching(friend, f"{EVENT}#dev alice: back")
        typing.lines.put_nowait(b"exit")
        assert await bounded(running) == EXIT_OK
    assert any("reconnecting" in note for note in notes)
    replayed = [e for e in events if isinstance(e, ChatLine) and e.replayed]
    assert [e.event.text for e in replayed] == ["while you were away"]
    assert not any(isinstance(e, ReplyLine) and e.text.startswith("ERROR") for e in events)


async def test_a_refused_resume_is_told_once_in_one_sentence(
    server: ChatServer, connect: ClientFactory
) -> None:
    events: list[Event] = []
    notes: list[str] = []
    typing = Typing()
    come_back = asyncio.Event()

    async def wait(delay: float) -> None:
        await come_back.wait()

    settings = ClientSettings(port=server.port, room="dev")
    async with ChatClient(
        settings, reconnect=True, notify=notes.append, wait=wait, jitter=lambda: 0.0
    ) as client:
        await client.open(configured_only(""))
        running = asyncio.ensure_future(client.run(typing, events.append))
        token = (await until_shown(events, f"{RESUME_PREFIX}.*")).removeprefix(RESUME_PREFIX)
        await until_shown(events, "joined #dev: 1 member")
        observer = await connect(server)
        await named(observer, "bob", "dev")
        cut_off(server, "Client01")
        await next_matching(observer, f"{EVENT}#dev \\*: Client01 lost the connection")
        thief = await connect(server)  # Takes the session first: the token is used up.
        await thief.greeting()
        await thief.send(f"/resume {token}")
        assert (await thief.read_block())[0].startswith("Resumed: you are Client01 again")
        come_back.set()

        async def told() -> bool:
            return any("resumed" in note for note in notes)

        await eventually(told, "the refusal was told")
        typing.lines.put_nowait(b"exit")
        assert await bounded(running) == EXIT_OK
    assert [note for note in notes if "resumed" in note] == [
        "the session could not be resumed (unknown or expired resume token); you are Client04 now."
    ]
    assert not [e for e in events if line_text(e).startswith("ERROR")]


async def test_a_reconnect_timeout_of_0_keeps_trying_without_a_time_limit(
    server: ChatServer,
) -> None:
    events: list[Event] = []
    notes: list[str] = []
    typing = Typing()
    waits: list[float] = []

    async def wait(delay: float) -> None:
        waits.append(delay)

    settings = ClientSettings(port=server.port, name="alice", reconnect_timeout=0)
    async with ChatClient(
        settings, reconnect=True, notify=notes.append, wait=wait, jitter=lambda: 0.0
    ) as client:
        await client.open(configured_only(""))
        running = asyncio.ensure_future(client.run(typing, events.append))
        await until_shown(events, "You are now alice.")
        cut_off(server, "alice")
        await until_shown(events, r"Resumed: you are alice again\b.*")
        typing.lines.put_nowait(b"exit")
        assert await bounded(running) == EXIT_OK
    assert waits[:1] == [0.25]  # Half the first step: the jitter is 0.
    assert "the connection was lost; reconnecting without a time limit..." in notes


# On a terminal


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    yield term
    term.close()


@one_loop
async def test_on_a_terminal_the_prompt_follows_the_name_and_a_lost_connection_is_resumed(
    server: ChatServer, connect: ClientFactory, ackchat: ClientCommand, terminal: Terminal
) -> None:
    environment = {**ackchat.environment, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
    process = await asyncio.create_subprocess_exec(
        ackchat.path, "connect", "--port", str(server.port), "--name", "alice", "--room", "dev",
        stdin=terminal.child, stdout=terminal.child, stderr=terminal.child,
        env=environment, start_new_session=True,
    )  # fmt: skip
    ackchat.processes.append(process)
    await terminal.expect(b"joined #dev: 1 member")
    await terminal.expect(b"alice>")
    friend = await connect(server)
    await named(friend, "bob", "dev")
    assert await friend.ask("/say dev hi \x1b[2J") == "/say dev hi \x1b[2J ACK"
    await terminal.expect(b"bob")
    await terminal.expect(b": hi \xef\xbf\xbd[2J")  # The server's U+FFFD, shown as it is.
    await terminal.expect(b"alice>")  # Drawn again below the line: raw mode is back.
    terminal.type(b"/nick bad name\r")
    await terminal.expect(b"ERROR invalid name 'bad name': a name cannot contain spaces;")
    cut_off(server, "alice")
    await terminal.expect(b"reconnecting")
    await terminal.expect(b"Resumed: you are alice again in #dev")
    await next_matching(friend, f"{EVENT}#dev \\*: alice is back")
    terminal.type(b"/nick alicia\r")
    await terminal.expect(b"You are now alicia.")
    await terminal.expect(b"alicia>")
    terminal.type(b"exit\r")
    await terminal.expect(b"Goodbye, alicia.")
    assert await bounded(process.wait()) == EXIT_OK
    assert b"\x1b[2J" not in terminal.output
