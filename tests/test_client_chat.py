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
    typed: asyncio.Queue[bytes] = asyncio.Queue()
    come_back = asyncio.Event()

    async def wait(delay: float) -> None:
        await come_back.wait()

    async def talk(session: Session) -> None:
        while not session.tracker.exit_sent:
            await session.send(await typed.get())
        await say_exit(session)

    async def shown_line(pattern: str) -> None:
        async def probe() -> bool:
            return any(re.fullmatch(pattern, line_text(event)) for event in events)

        await eventually(probe, f"a line like {pattern!r} was shown")

    settings = ClientSettings(port=server.port, name="alice", room="dev")
    async with ChatClient(
        settings, reconnect=True, notify=notes.append, wait=wait, jitter=lambda: 0.0
    ) as client:
        await client.open(configured_only(""))
        running = asyncio.ensure_future(client.run(talk, events.append))
        await shown_line("joined #dev: 1 member")
        friend = await connect(server)
        await named(friend, "bob", "dev")
        (connection,) = [c for c in server.connections if c.name == "alice"]
        assert connection.transport is not None
        connection.transport.abort()
        await next_matching(friend, f"{EVENT}#dev \\*: alice lost the connection")
        await friend.send("/msg alice while you were away")
        assert await friend.reply() == "/msg alice while you were away ACK"
        come_back.set()
        await shown_line(r"Resumed: you are alice again in #dev; \d+ missed messages follow")
        await shown_line(f"{EVENT}direct bob>alice: while you were away")
        assert client.name == "alice"
        typed.put_nowait(b"/say dev back")
        await next_matching(friend, f"{EVENT}#dev alice: back")
        typed.put_nowait(b"exit")
        assert await bounded(running) == EXIT_OK
    assert any("reconnecting" in note for note in notes)
    replayed = [e for e in events if isinstance(e, ChatLine) and e.replayed]
    assert [e.event.text for e in replayed] == ["while you were away"]
    assert not any(isinstance(e, ReplyLine) and e.text.startswith("ERROR") for e in events)


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
    (connection,) = [c for c in server.connections if c.name == "alice"]
    assert connection.transport is not None
    connection.transport.abort()
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
