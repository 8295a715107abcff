"""``ackchat connect`` against a server with a password, TLS or an address policy."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import signal
import stat
import struct
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from prompt_toolkit import PromptSession
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from ackchat.admission import Refusal
from ackchat.client import EXIT_AUTH_FAILED, EXIT_CONNECT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from ackchat.client.interactive import password_prompt
from ackchat.protocol import replies
from conftest import ServerFactory, snapshot
from lineclient import bounded
from test_client_piped import WELCOME, ClientCommand, ackchat, finish, shown

PASSWORD = "correct horse battery"

# Each test starts its own client process, so a second event loop for the server adds nothing.
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])


# The installed ``ackchat`` command, as the piped client's tests start it.
client = ackchat


def with_env(command: ClientCommand, **variables: str) -> ClientCommand:
    """The same command with more environment variables (the fixture's processes still end)."""
    command.environment = {**command.environment, **variables}
    return command


async def run(
    command: ClientCommand, port: int, data: bytes, *options: str
) -> tuple[int, list[str], str]:
    """Run the client on ``data``; its exit code, stdout lines (see shown()) and stderr."""
    process = await command.start(port, *options)
    stdout, stderr = await bounded(process.communicate(data))
    assert process.returncode is not None
    return process.returncode, shown(stdout.decode().splitlines()), stderr.decode()


# Passwords


async def test_the_password_from_the_environment_signs_in(
    start_server: ServerFactory, client: ClientCommand
) -> None:
    server = await start_server(password=PASSWORD, auth_delay=0)
    code, out, errors = await run(
        with_env(client, ACKCHAT_PASSWORD=PASSWORD), server.port, b"hello\n"
    )
    assert (code, errors) == (0, "")
    assert out == [*WELCOME, "hello ACK", "Goodbye, Client01."]
    assert PASSWORD not in "\n".join(out)


async def test_the_password_from_a_file_signs_in(
    start_server: ServerFactory, client: ClientCommand, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(f"{PASSWORD}\n")
    server = await start_server(password=PASSWORD, auth_delay=0)
    code, out, errors = await run(client, server.port, b"hi\n", "--password-file", str(secret))
    assert (code, errors) == (0, "")
    assert out == [*WELCOME, "hi ACK", "Goodbye, Client01."]


async def test_a_wrong_password_exits_6_without_trying_it_again(
    start_server: ServerFactory, client: ClientCommand
) -> None:
    server = await start_server(password=PASSWORD, auth_delay=0, auth_attempts=3)
    code, out, errors = await run(
        with_env(client, ACKCHAT_PASSWORD="guess"), server.port, b"hello\n"
    )
    assert (code, out) == (EXIT_AUTH_FAILED, [])
    assert errors == "ackchat: wrong password (attempt 1 of 3).\n"
    assert server.counters.refused[Refusal.WRONG_PASSWORD] == 1


async def test_the_last_wrong_password_ends_with_the_servers_sentence(
    start_server: ServerFactory, client: ClientCommand
) -> None:
    server = await start_server(password=PASSWORD, auth_delay=0, auth_attempts=1)
    code, out, errors = await run(client, server.port, b"", "--password", "guess")
    assert (code, out) == (EXIT_AUTH_FAILED, [])
    assert errors == f"ackchat: {replies.TOO_MANY_WRONG_PASSWORDS}\n"


async def test_no_password_in_piped_mode_fails_at_once(
    start_server: ServerFactory, client: ClientCommand
) -> None:
    server = await start_server(password=PASSWORD, auth_delay=0)
    code, out, errors = await run(client, server.port, b"hello\n")
    assert (code, out) == (EXIT_AUTH_FAILED, [])
    assert errors == (
        "ackchat: the server asks for a password; give --password-file FILE or ACKCHAT_PASSWORD.\n"
    )
    assert server.counters.refused[Refusal.WRONG_PASSWORD] == 0


async def test_an_unreadable_password_file_exits_2_before_connecting(
    client: ClientCommand, tmp_path: Path
) -> None:
    missing = tmp_path / "missing"
    # Port 1 is never dialled: the file is read first.
    code, out, errors = await run(client, 1, b"", "--password-file", str(missing))
    assert (code, out) == (EXIT_USAGE, [])
    assert errors == (
        f"ackchat: cannot read the password file {missing}: No such file or directory\n"
    )


async def test_a_password_is_not_sent_to_a_server_that_does_not_ask(
    start_server: ServerFactory, client: ClientCommand
) -> None:
    server = await start_server()
    code, out, _ = await run(client, server.port, b"status\n", "--password", PASSWORD)
    assert code == 0
    assert out[:3] == WELCOME
    assert PASSWORD not in "\n".join(out)


# TLS


async def test_tls_with_the_ca_file(
    start_server: ServerFactory, client: ClientCommand, tls_files: tuple[str, str, str]
) -> None:
    cert, key, ca = tls_files
    server = await start_server(tls_cert=cert, tls_key=key)
    code, out, errors = await run(client, server.port, b"over tls\n", "--tls", "--ca", ca)
    assert (code, errors) == (0, "")
    assert out == [*WELCOME, "over tls ACK", "Goodbye, Client01."]


async def test_tls_and_a_password_together(
    start_server: ServerFactory, client: ClientCommand, tls_files: tuple[str, str, str]
) -> None:
    cert, key, ca = tls_files
    server = await start_server(tls_cert=cert, tls_key=key, password=PASSWORD, auth_delay=0)
    code, out, errors = await run(
        with_env(client, ACKCHAT_PASSWORD=PASSWORD), server.port, b"a\n", "--tls", "--ca", ca
    )
    assert (code, errors) == (0, "")
    assert out == [*WELCOME, "a ACK", "Goodbye, Client01."]


async def test_tls_without_trusting_the_ca_exits_3(
    start_server: ServerFactory, client: ClientCommand, tls_files: tuple[str, str, str]
) -> None:
    cert, key, _ = tls_files
    server = await start_server(tls_cert=cert, tls_key=key)
    code, out, errors = await run(client, server.port, b"hello\n", "--tls")
    assert (code, out) == (EXIT_CONNECT_FAILED, [])
    prefix = (
        f"ackchat: cannot connect to 127.0.0.1:{server.port}: the server's TLS certificate"
        " could not be verified (certificate verify failed: "
    )
    assert errors.startswith(prefix), errors
    assert errors.endswith("); use --ca FILE to trust its CA.\n"), errors
    assert errors.count("\n") == 1
    assert snapshot(server).seen == 0


async def test_tls_to_a_name_the_certificate_is_not_for_exits_3(
    start_server: ServerFactory,
    client: ClientCommand,
    authority: trustme.CA,
    tls_files: tuple[str, str, str],
    tmp_path: Path,
) -> None:
    _, _, ca = tls_files
    elsewhere = authority.issue_cert("chat.example.org")
    cert, key = tmp_path / "other.pem", tmp_path / "other.key"
    elsewhere.private_key_and_cert_chain_pem.write_to_path(str(cert))
    elsewhere.private_key_pem.write_to_path(str(key))
    server = await start_server(tls_cert=str(cert), tls_key=str(key))
    code, _, errors = await run(client, server.port, b"", "--tls", "--ca", ca)
    assert code == EXIT_CONNECT_FAILED
    assert errors.startswith(
        f"ackchat: cannot connect to 127.0.0.1:{server.port}:"
        " the server's TLS certificate is not valid for 127.0.0.1 ("
    ), errors


async def test_tls_insecure_skips_verification(
    start_server: ServerFactory, client: ClientCommand, tls_files: tuple[str, str, str]
) -> None:
    cert, key, _ = tls_files
    server = await start_server(tls_cert=cert, tls_key=key)
    code, out, errors = await run(client, server.port, b"hello\n", "--tls", "--insecure")
    assert (code, errors) == (0, "")
    assert out == [*WELCOME, "hello ACK", "Goodbye, Client01."]


async def test_a_bad_ca_file_exits_2_before_connecting(
    client: ClientCommand, tmp_path: Path
) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello\n")
    code, out, errors = await run(client, 1, b"", "--tls", "--ca", str(not_pem))
    assert (code, out) == (EXIT_USAGE, [])
    assert errors == (
        f"ackchat: cannot load CA certificates from {not_pem}:"
        f" {not_pem} holds no PEM certificate.\n"
    )


async def test_tls_to_a_plain_server_fails_clearly(
    start_server: ServerFactory, client: ClientCommand, tls_files: tuple[str, str, str]
) -> None:
    _, _, ca = tls_files
    server = await start_server()
    code, out, errors = await run(client, server.port, b"", "--tls", "--ca", ca)
    assert (code, out) == (EXIT_CONNECT_FAILED, [])
    assert errors.startswith(f"ackchat: cannot connect to 127.0.0.1:{server.port}: "), errors
    assert errors.endswith("does the server serve TLS on this port?\n"), errors


async def test_plain_text_to_a_tls_server_gives_up_with_a_hint(
    start_server: ServerFactory, client: ClientCommand, tls_files: tuple[str, str, str]
) -> None:
    cert, key, _ = tls_files
    server = await start_server(tls_cert=cert, tls_key=key)
    code, out, errors = await run(client, server.port, b"", "--connect-timeout", "0.2")
    assert (code, out) == (EXIT_CONNECT_FAILED, [])
    assert errors == (
        f"ackchat: 127.0.0.1:{server.port} accepted the connection but sent no greeting"
        " within 0.2 seconds; if it serves TLS, connect with --tls.\n"
    )


# Address policy


async def test_a_refusal_by_the_deny_list_exits_3_with_the_servers_sentence(
    start_server: ServerFactory, client: ClientCommand
) -> None:
    server = await start_server(deny=("127.0.0.0/8",))
    code, out, errors = await run(client, server.port, b"hello\n")
    assert (code, out) == (EXIT_CONNECT_FAILED, [])
    assert errors == "ackchat: Connection refused: address not allowed. Try again later.\n"


# Ctrl-C


async def test_ctrl_c_while_waiting_for_input_exits_130_quietly(
    start_server: ServerFactory, client: ClientCommand
) -> None:
    server = await start_server()
    process = await client.start(server.port)
    assert process.stdout is not None
    for _ in WELCOME:
        await bounded(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    code, lines, errors = await finish(process)
    assert (code, lines, errors) == (EXIT_INTERRUPTED, [], "")


async def test_ctrl_c_while_waiting_for_a_reply_exits_130_quietly(client: ClientCommand) -> None:
    """A server that greets and then never answers: the client waits for the reply."""
    greeted = asyncio.Event()

    async def greet_then_ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(replies.greeting("Client01"))
        await reader.readline()
        greeted.set()
        await reader.read()
        writer.close()

    silent = await asyncio.start_server(greet_then_ignore, "127.0.0.1", 0)
    async with silent:
        port = silent.sockets[0].getsockname()[1]
        process = await client.start(port)
        assert process.stdin is not None
        process.stdin.write(b"hello\n")
        await bounded(greeted.wait())
        process.send_signal(signal.SIGINT)
        code, lines, errors = await finish(process)
    assert (code, lines, errors) == (EXIT_INTERRUPTED, WELCOME[:2], "")


# The password prompt on a terminal

# Characters that no prompt, asterisk or escape sequence contains.
UNSEEN = "\u00df\u00f8\u00e6\u00e5\u20ac"


class ScreenRecorder(DummyOutput):
    """A prompt_toolkit output that keeps the text written (escape sequences are calls)."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def write(self, data: str) -> None:
        self.text.append(data)

    def write_raw(self, data: str) -> None:
        self.text.append(data)


async def answer_and_screen(prompt: PromptSession[str], keys: str) -> tuple[str, str]:
    """What ``prompt`` returns when ``keys`` are typed, and all it wrote meanwhile."""
    assert isinstance(prompt.output, ScreenRecorder)
    assert prompt.input is not None
    prompt.input.send_text(keys)  # type: ignore[attr-defined]  # A pipe input has it.
    answer = await bounded(prompt.prompt_async())
    return answer, "".join(prompt.output.text)


async def test_the_password_prompt_echoes_nothing_not_even_asterisks() -> None:
    with create_pipe_input() as keyboard:
        answer, screen = await answer_and_screen(
            password_prompt(keyboard, ScreenRecorder()), UNSEEN + "\r"
        )
    assert answer == UNSEEN
    assert "Password:" in screen
    assert "*" not in screen
    assert not set(UNSEEN) & set(screen)


async def test_the_recorder_sees_what_is_echoed_so_the_test_above_can_fail() -> None:
    with create_pipe_input() as keyboard:
        masked = PromptSession[str](
            "Password: ", is_password=True, input=keyboard, output=ScreenRecorder()
        )
        _, asterisks = await answer_and_screen(masked, UNSEEN + "\r")
    with create_pipe_input() as keyboard:
        plain = PromptSession[str]("Password: ", input=keyboard, output=ScreenRecorder())
        _, echoed = await answer_and_screen(plain, UNSEEN + "\r")
    assert "*" * len(UNSEEN) in asterisks
    assert UNSEEN in echoed


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Terminal:
    """The parent side of a pseudo-terminal: what the program wrote, and typing into it."""

    def __init__(self) -> None:
        self.parent, self.child = pty.openpty()
        fcntl.ioctl(self.child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.output = bytearray()
        self._seen = 0

    def type(self, keys: bytes) -> None:
        os.write(self.parent, keys)

    async def expect(self, text: bytes) -> None:
        """Wait until ``text`` appears after what was expected before."""
        loop = asyncio.get_running_loop()
        while (found := self.output.find(text, self._seen)) < 0:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.parent, _set_once, readable)
            try:
                await bounded(readable)
            finally:
                loop.remove_reader(self.parent)
            try:
                chunk = os.read(self.parent, 65536)
            except OSError:  # EIO: the program closed the terminal.
                chunk = b""
            if not chunk:
                raise EOFError(f"the terminal closed before {text!r}: {bytes(self.output)!r}")
            self.output += chunk
        self._seen = found + len(text)

    def close(self) -> None:
        for fd in (self.parent, self.child):
            os.close(fd)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    yield term
    term.close()


@pytest.fixture
def on_terminal(client: ClientCommand) -> ClientCommand:
    """The command, set up to run on a pseudo-terminal."""
    # No cursor position requests: nobody on this terminal would answer them.
    return with_env(client, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")


async def start_on(
    command: ClientCommand, terminal: Terminal, port: int
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        command.path, "connect", "--port", str(port),
        stdin=terminal.child, stdout=terminal.child, stderr=terminal.child,
        env=command.environment, start_new_session=True,
    )  # fmt: skip
    command.processes.append(process)
    return process


async def test_the_password_is_asked_for_on_a_terminal_until_it_is_right(
    start_server: ServerFactory, on_terminal: ClientCommand, terminal: Terminal
) -> None:
    server = await start_server(password=PASSWORD, auth_delay=0)
    process = await start_on(on_terminal, terminal, server.port)
    await terminal.expect(b"Password:")
    terminal.type(b"a guess\r")
    await terminal.expect(b"ERROR wrong password (attempt 1 of 3).")
    await terminal.expect(b"Password:")
    terminal.type(PASSWORD.encode() + b"\r")
    await terminal.expect(b"Welcome! You are Client01.")
    await terminal.expect(b"Client01>")
    terminal.type(b"exit\r")
    await terminal.expect(b"Goodbye, Client01.")
    assert await bounded(process.wait()) == 0
    assert PASSWORD.encode() not in terminal.output
    assert b"a guess" not in terminal.output
    assert b"*" not in terminal.output
    history = (on_terminal.state / "ackchat" / "history").read_bytes()
    assert b"exit" in history
    assert PASSWORD.encode() not in history
    assert b"a guess" not in history


async def test_ctrl_d_at_the_password_prompt_leaves(
    start_server: ServerFactory, on_terminal: ClientCommand, terminal: Terminal
) -> None:
    server = await start_server(password=PASSWORD, auth_delay=0)
    process = await start_on(on_terminal, terminal, server.port)
    await terminal.expect(b"Password:")
    terminal.type(b"\x04")
    assert await bounded(process.wait()) == 0
    assert server.counters.refused[Refusal.WRONG_PASSWORD] == 0


async def test_the_auth_timeout_ends_the_password_prompt(
    start_server: ServerFactory, on_terminal: ClientCommand, terminal: Terminal
) -> None:
    server = await start_server(password=PASSWORD, auth_timeout=0.2)
    process = await start_on(on_terminal, terminal, server.port)
    await terminal.expect(b"Password:")
    await terminal.expect(f"ackchat: {replies.AUTH_TIMEOUT}".encode())
    assert await bounded(process.wait()) == EXIT_AUTH_FAILED


# The input history on a terminal


async def test_the_history_outlives_the_run_without_its_secrets(
    start_server: ServerFactory, on_terminal: ClientCommand, terminal: Terminal
) -> None:
    server = await start_server()
    first = await start_on(on_terminal, terminal, server.port)
    # Each key waits for the prompt: while a line prints above it, the terminal is not
    # in raw mode, and would take Ctrl-D for the end of its input. The greeting's last
    # line prints above the first prompt.
    await terminal.expect(replies.RESUME_PREFIX.encode())
    await terminal.expect(b"Client01>")
    terminal.type(b"hello history\r")
    await terminal.expect(b"hello history ACK")
    await terminal.expect(b"Client01>")
    terminal.type(f"auth {PASSWORD}\r".encode())  # After the greeting it is a message.
    await terminal.expect(f"auth {PASSWORD} ACK".encode())
    await terminal.expect(b"Client01>")
    terminal.type(b"\x04")
    await terminal.expect(b"Goodbye, Client01.")
    assert await bounded(first.wait()) == 0
    path = on_terminal.state / "ackchat" / "history"
    assert (stat.S_IMODE(path.parent.stat().st_mode), stat.S_IMODE(path.stat().st_mode)) == (
        0o700,
        0o600,
    )
    assert PASSWORD.encode() not in path.read_bytes()
    second = await start_on(on_terminal, terminal, server.port)
    await terminal.expect(replies.RESUME_PREFIX.encode())
    await terminal.expect(b"Client02>")
    terminal.type(b"\x1b[A\r")  # Up: the last line kept, then Enter.
    await terminal.expect(b"hello history ACK")
    terminal.type(b"exit\r")
    await terminal.expect(b"Goodbye, Client02.")
    assert await bounded(second.wait()) == 0


async def test_a_history_file_that_cannot_be_used_costs_one_line(
    start_server: ServerFactory, on_terminal: ClientCommand, terminal: Terminal, tmp_path: Path
) -> None:
    server = await start_server()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    process = await start_on(
        with_env(on_terminal, ACKCHAT_HISTORY_FILE=str(blocker / "history")), terminal, server.port
    )
    await terminal.expect(b"cannot keep the input history in ")
    await terminal.expect(b"(Not a directory); it lasts for this run only.")
    await terminal.expect(b"Client01>")
    terminal.type(b"still here\r")
    await terminal.expect(b"still here ACK")
    terminal.type(b"exit\r")
    await terminal.expect(b"Goodbye, Client01.")
    assert await bounded(process.wait()) == 0
    assert terminal.output.count(b"cannot keep the input history") == 1
