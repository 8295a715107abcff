"""Every line the server sends, formatted here and nowhere else.

Replies are UTF-8 lines ending in LF. A multi-line reply (greeting, ``status``,
``help``) ends with a line holding a single dot; a content line that starts with a dot
gets one more in front (dot-stuffing, as in SMTP and POP3), so the end is always
detectable without a timer. See docs/PROTOCOL.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from itertools import chain

from ackchat.protocol.framing import LineTooLong
from ackchat.registry import SessionRecord, StatusSnapshot

END_OF_BLOCK = "."
ACK_SUFFIX = " ACK"
SERVER_FULL = "Server is full. Try again later."
SERVER_SHUTTING_DOWN = "Server is shutting down. Goodbye."
INVALID_UTF8 = "ERROR invalid UTF-8: the line was discarded."
ERROR_PREFIX = "ERROR "
GREETING_PREFIX = "Welcome! You are "

HELP_LINES = (
    "Commands (case does not matter):",
    "  status      connected clients and the most recent departed ones, with totals",
    "  status all  every client in the cache",
    "  help        this list",
    "  exit        end the session",
    "Any other line comes back with ' ACK' appended.",
)


def line(text: str) -> bytes:
    """One reply line, encoded."""
    return f"{text}\n".encode()


def ack(text: str) -> bytes:
    """The answer to an ordinary message: its own text with `` ACK`` appended."""
    return f"{text}{ACK_SUFFIX}\n".encode()


def block_lines(header: str, body: Iterable[str]) -> Iterator[str]:
    """The lines of a multi-line reply: header, dot-stuffed body, end-of-block marker."""
    yield header
    for text in body:
        yield f".{text}" if text.startswith(".") else text
    yield END_OF_BLOCK


def encode_lines(lines: Iterable[str]) -> bytes:
    """Several reply lines, encoded as one chunk."""
    return "".join(f"{text}\n" for text in lines).encode()


def greeting(name: str) -> bytes:
    """The first reply a client gets: its name, then how to use the server."""
    return encode_lines(
        block_lines(
            f"{GREETING_PREFIX}{name}.",
            ["Every line you send comes back with ACK. Type 'help' for the commands."],
        )
    )


def help_reply() -> bytes:
    """The reply to ``help``."""
    return encode_lines(block_lines("help:", HELP_LINES))


def goodbye(name: str) -> bytes:
    """The reply to ``exit``, just before the server closes the connection."""
    return line(f"Goodbye, {name}.")


def idle_timeout(seconds: float) -> bytes:
    """Sent before closing a connection that was silent too long."""
    return line(f"Idle timeout: no input for {seconds:g} seconds. Goodbye.")


def line_too_long(error: LineTooLong) -> bytes:
    """The answer to a line over the length limit."""
    return line(
        f"{ERROR_PREFIX}line too long: {error.length} bytes, the limit is {error.limit};"
        " the line was discarded."
    )


@lru_cache(maxsize=8192)
def format_time(timestamp: int) -> str:
    """ISO 8601 local time with its UTC offset, to the second (cached: many share one)."""
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def session_line(record: SessionRecord) -> str:
    """One cache entry as ``status`` shows it."""
    connected = format_time(int(record.connected_at))
    if record.disconnected_at is None:
        return f"{record.name} {record.address} connected {connected} still connected"
    disconnected = format_time(int(record.disconnected_at))
    return (
        f"{record.name} {record.address} connected {connected}"
        f" disconnected {disconnected} ({record.reason})"
    )


def status_lines(snapshot: StatusSnapshot) -> Iterator[str]:
    """The reply to ``status``, line by line, so a long one can be sent in pieces."""
    header = (
        f"status: {snapshot.connected} of {snapshot.max_clients} clients connected,"
        f" {snapshot.seen} seen, {snapshot.rejected} rejected (server full),"
        f" {snapshot.dropped} dropped from the cache"
    )
    body: Iterator[str] = map(session_line, snapshot.sessions)
    if snapshot.hidden:
        footer = (
            f"{snapshot.hidden} earlier departed clients not shown; send 'status all' to list them."
        )
        body = chain(body, [footer])
    return block_lines(header, body)
