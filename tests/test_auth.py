"""Shared-secret access: no name, slot or status before 'auth <password>'."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ackchat.admission import Refusal
from ackchat.server.assembly import ChatServer
from ackchat.settings import ServerSettings, SettingsError
from conftest import ClientFactory, ServerFactory, snapshot

AUTH_REQUIRED = "Password required: send 'auth <password>'."


async def test_the_right_password_gets_a_name(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(password="s3cret pass")
    client = await connect(server)
    assert await client.read_line() == AUTH_REQUIRED
    await client.send_raw(b"AUTH   s3cret pass  \nhello\n")
    assert await client.greeting() == "Client01"
    assert await client.read_line() == "hello ACK"


async def test_nothing_works_before_auth_and_no_slot_is_taken(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(password="pw", max_clients=1)
    client = await connect(server)
    assert await client.read_line() == AUTH_REQUIRED
    for line in ("status", "help", "hello"):
        assert await client.ask(line) == "ERROR authenticate first: send 'auth <password>'."
    assert snapshot(server).connected == 0
    member = await connect(server)
    await member.read_line()
    await member.send("auth pw")
    assert await member.greeting() == "Client01"
    await client.send("auth pw")
    assert await client.read_line() == "Server is full. Try again later."
    assert await client.at_eof()


async def test_wrong_passwords_are_slowed_counted_and_closed(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(password="pw", auth_attempts=3, auth_delay=0.05)
    client = await connect(server)
    await client.read_line()
    await client.send_raw(b"auth nope\nauth PW\nauth pw!\nauth pw\n")
    assert await client.read_line() == "ERROR wrong password (attempt 1 of 3)."
    assert await client.read_line() == "ERROR wrong password (attempt 2 of 3)."
    assert await client.read_line() == "Too many wrong passwords. Goodbye."
    assert await client.at_eof()
    assert server.counters.refused[Refusal.WRONG_PASSWORD] == 3
    assert snapshot(server).seen == 0


async def test_a_wrong_password_answer_waits(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(password="pw", auth_delay=0.3)
    client = await connect(server)
    await client.read_line()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await client.ask("auth guess") == "ERROR wrong password (attempt 1 of 3)."
    assert loop.time() - started >= 0.25  # timers may fire a millisecond early


async def test_authentication_must_happen_in_time(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(password="pw", auth_timeout=0.2)
    client = await connect(server)
    assert await client.read_line() == AUTH_REQUIRED
    assert await client.read_line() == "Authentication timeout. Goodbye."
    assert await client.at_eof()


@pytest.mark.parametrize("leave", ["exit", "/exit", "/quit"])
async def test_exit_before_auth(
    leave: str, start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(password="pw")
    client = await connect(server)
    await client.read_line()
    assert await client.ask(leave) == "Goodbye."
    assert await client.at_eof()


async def test_password_from_a_file(
    tmp_path: Path, start_server: ServerFactory, connect: ClientFactory
) -> None:
    secret = tmp_path / "password"
    secret.write_text("from file\n")
    server = await start_server(password_file=str(secret))
    client = await connect(server)
    await client.read_line()
    await client.send("auth from file")
    assert await client.greeting() == "Client01"


def test_the_password_never_shows_in_the_settings_repr() -> None:
    assert "hunter2" not in repr(ServerSettings(password="hunter2"))


def test_password_and_file_together_is_an_error() -> None:
    with pytest.raises(SettingsError, match="not both"):
        ServerSettings(password="a", password_file="b")


def test_an_unreadable_password_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read the password file"):
        ChatServer(ServerSettings(password_file=str(tmp_path / "missing")))
