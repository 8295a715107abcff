"""Every line the server sends, formatted here and nowhere else.

Replies are UTF-8 lines ending in LF. A multi-line reply (greeting, ``status``,
``help``) ends with a line holding a single dot; a content line that starts with a dot
gets one more in front (dot-stuffing, as in SMTP and POP3), so the end is always
detectable without a timer. See docs/PROTOCOL.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from itertools import chain
from typing import Protocol

from ackchat.protocol.commands import is_plain_message
from ackchat.protocol.framing import LineTooLong

END_OF_BLOCK = "."
ACK_SUFFIX = " ACK"
_ACK_LINE_END = b" ACK\n"
SERVER_FULL = "Server is full. Try again later."
# The backend (a cluster's shared state) cannot be reached: for a new connection, and
# for a command that needs it.
SERVER_UNAVAILABLE = "Server temporarily unavailable. Try again later."
BACKEND_UNAVAILABLE = (
    "ERROR temporarily unavailable: the server cannot reach its shared state; try again later."
)
SERVER_SHUTTING_DOWN = "Server is shutting down. Goodbye."
# Cluster mode: Redis lost the cluster's state, and the client's name went to another
# session before this server could register the client again.
NAME_TAKEN = (
    "Session ended: while this server could not reach the cluster, your name went to"
    " another session. Goodbye."
)
# An operator disconnected the client (the admin API): a farewell, so it does not reconnect.
KICKED = "Disconnected by the server's operator. Goodbye."
# A drain (SIGUSR1): the connection stays open, but the client should move (see draining()).
DRAINING_PREFIX = "Server draining: please reconnect"
INVALID_UTF8 = "ERROR invalid UTF-8: the line was discarded."
ERROR_PREFIX = "ERROR "
GREETING_PREFIX = "Welcome! You are "
RESUME_PREFIX = "Resume token: "
GREETING_HELP = "Every line you send comes back with ACK. Type 'help' for the commands."
AUTH_REQUIRED = "Password required: send 'auth <password>'."
AUTH_FIRST = "ERROR authenticate first: send 'auth <password>'."
AUTH_TIMEOUT = "Authentication timeout. Goodbye."
TOO_MANY_WRONG_PASSWORDS = "Too many wrong passwords. Goodbye."
RATE_LIMITED_GOODBYE = "Too many lines over the rate limit. Goodbye."
HIDDEN_ADDRESS = "-"
REFUSED_PREFIX = "Connection refused: "
WRONG_PASSWORD_PREFIX = f"{ERROR_PREFIX}wrong password "

# What a client sends may reach another client's terminal only through this table:
# C0 controls, DEL, C1 controls and the Unicode bidirectional overrides and isolates
# become U+FFFD, so no escape sequence, bell, carriage return or reordering gets through.
_UNSAFE_CHARACTERS = dict.fromkeys(
    [
        *range(0x00, 0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ],
    "\ufffd",
)

HELP_LINES = (
    "Commands (case does not matter):",
    "  status, /status           connected clients and the recent departed ones, with totals",
    "  status all, /status all   every client in the cache",
    "  who, /who                 the connected clients and their rooms",
    "  help, /help               this list",
    "  exit, /exit, /quit        end the session",
    "Chat:",
    "  /msg <name> <text>        a message to one client",
    "  /all <text>               a message to every client",
    "  /join <room>              enter a room (made if new) and see its recent messages",
    "  /say <room> <text>        a message to a room you are in",
    "  /leave <room>             leave a room",
    "  /rooms                    every room with its member count",
    "  /members <room>           who is in a room",
    "  /nick <name>              choose your name",
    "  /history <room>|direct [before <id>] [<count>]   older messages, a page at a time",
    "  /resume <token>           take back your session after a lost connection",
    "Any other line comes back with ' ACK' appended.",
    "Messages to you arrive as: @<id> <time> <all|#room|direct> <from>: <text>",
)


def sanitize(text: str) -> str:
    """``text`` made safe to show on another client's terminal (see docs/PROTOCOL.md).

    Every unsafe character is a control (Cc) or a format character (Cf), neither of
    which is printable: text that is all printable (most names and addresses) is safe as
    it is, and ``isprintable`` tells so ten times faster than the table can replace.
    """
    return text if text.isprintable() else text.translate(_UNSAFE_CHARACTERS)


def host_port(host: str, port: int) -> str:
    """An address as shown to people: ``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def line(text: str) -> bytes:
    """One reply line, encoded."""
    return f"{text}\n".encode()


def ack(text: str) -> bytes:
    """The answer to an ordinary message: its own text with `` ACK`` appended."""
    return f"{text}{ACK_SUFFIX}\n".encode()


def plain_acks(lines: Sequence[bytes | LineTooLong]) -> bytes | None:
    """The answers to a batch of lines if all are ordinary messages, else None.

    The fast path for the common case: one join for the whole batch.
    """
    for line in lines:
        if type(line) is not bytes or not is_plain_message(line):
            return None
    # Every line is bytes (checked above); a cast would cost a call per batch.
    return _ACK_LINE_END.join(lines) + _ACK_LINE_END  # type: ignore[arg-type]


def block_lines(header: str, body: Iterable[str]) -> Iterator[str]:
    """The lines of a multi-line reply: header, dot-stuffed body, end-of-block marker."""
    yield header
    for text in body:
        yield f".{text}" if text.startswith(".") else text
    yield END_OF_BLOCK


def encode_lines(lines: Iterable[str]) -> bytes:
    """Several reply lines, encoded as one chunk."""
    return "".join(f"{text}\n" for text in lines).encode()


def greeting(name: str, resume_token: str | None = None) -> bytes:
    """The first reply a client gets: its name, how to use the server, its resume token.

    A block, written out directly: every connection pays for it.
    """
    token = f"{RESUME_PREFIX}{resume_token}\n" if resume_token is not None else ""
    return f"{GREETING_PREFIX}{name}.\n{GREETING_HELP}\n{token}{END_OF_BLOCK}\n".encode()


def help_reply() -> bytes:
    """The reply to ``help``."""
    return encode_lines(block_lines("help:", HELP_LINES))


def goodbye(name: str) -> bytes:
    """The reply to ``exit``, just before the server closes the connection."""
    return line(f"Goodbye, {name}.")


def idle_timeout(seconds: float) -> bytes:
    """Sent before closing a connection that was silent too long."""
    return line(f"Idle timeout: no input for {seconds:g} seconds. Goodbye.")


def line_timeout(seconds: float) -> bytes:
    """Sent before closing a connection whose line did not end in time (a slow sender)."""
    return line(f"Line timeout: a line must end within {seconds:g} seconds. Goodbye.")


def rate_limited(rate: float) -> bytes:
    """The answer to a line over the client's rate limit."""
    return line(
        f"{ERROR_PREFIX}rate limit: over {rate:g} lines per second; the line was discarded."
    )


def wrong_password(attempt: int, allowed: int) -> bytes:
    """The answer to a wrong ``auth``, after a delay."""
    return line(f"{WRONG_PASSWORD_PREFIX}(attempt {attempt} of {allowed}).")


def draining(redirect: str = "") -> bytes:
    """Sent to every client when the server drains: reconnect, to ``redirect`` if given.

    Not a farewell (it does not end in ``Goodbye.``): the connection stays open, so that
    the client can leave when it is ready, and its session is held for ``/resume``.
    """
    where = f" to {redirect}" if redirect else ""
    return line(f"{DRAINING_PREFIX}{where}.")


def refused(reason: str) -> bytes:
    """Sent to a connection the address policy turns away, just before closing it."""
    return line(f"{REFUSED_PREFIX}{reason}. Try again later.")


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


class SessionLike(Protocol):
    """The fields of a session record that ``status`` shows (see ackchat.records)."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def connected_at(self) -> float: ...
    @property
    def disconnected_at(self) -> float | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def earlier_names(self) -> tuple[str, ...]: ...
    @property
    def node(self) -> str: ...


class SnapshotLike(Protocol):
    """The fields of a status snapshot that ``status`` shows (see ackchat.records)."""

    @property
    def sessions(self) -> Sequence[SessionLike]: ...
    @property
    def connected(self) -> int: ...
    @property
    def max_clients(self) -> int: ...
    @property
    def seen(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def hidden(self) -> int: ...


def session_line(record: SessionLike, show_address: bool = True) -> str:
    """One cache entry as ``status`` shows it."""
    name = sanitize(record.name)
    address = sanitize(record.address) if show_address else HIDDEN_ADDRESS
    connected = format_time(int(record.connected_at))
    if record.disconnected_at is None:
        text = f"{name} {address} connected {connected} still connected"
    else:
        disconnected = format_time(int(record.disconnected_at))
        text = f"{name} {address} connected {connected} disconnected {disconnected}"
        text += f" ({record.reason})"
    if record.earlier_names:
        text += f" (was {', '.join(map(sanitize, record.earlier_names))})"
    if record.node:
        # Cluster mode: the node the client is or was on (embedded mode has none).
        text += f" on {sanitize(record.node)}"
    return text


def status_lines(
    snapshot: SnapshotLike,
    show_addresses: bool = True,
    refused: Iterable[tuple[str, int]] = (),
    chat_losses: Iterable[tuple[str, int]] = (),
    as_of: float | None = None,
) -> Iterator[str]:
    """The reply to ``status``, line by line, so a long one can be sent in pieces.

    ``refused`` counts connections turned away before they got a name, by reason;
    ``chat_losses`` counts slow readers disconnected and the messages dropped with them
    (both as ``(what, count)`` pairs; zero counts are left out). ``as_of`` is when the
    snapshot was taken if it is an earlier one (the shared state cannot be reached now).
    """
    header = (
        f"status: {_connected_words(snapshot.connected, snapshot.max_clients)},"
        f" {snapshot.seen} seen, {snapshot.rejected} rejected (server full),"
        f" {snapshot.dropped} dropped from the cache"
    )
    for title, pairs in (("refused", refused), ("chat", chat_losses)):
        counts = sorted((str(what), count) for what, count in pairs if count)
        if counts:
            header += f"; {title}: " + ", ".join(f"{count} {what}" for what, count in counts)
    if as_of is not None:
        header += f"; as of {format_time(int(as_of))}: the shared state cannot be reached now"
    body: Iterator[str] = (session_line(record, show_addresses) for record in snapshot.sessions)
    if snapshot.hidden:
        body = chain(body, [status_hidden_line(snapshot.hidden)])
    return block_lines(header, body)


def status_hidden_line(hidden: int) -> str:
    """The last line of a ``status`` that left the oldest departed clients out."""
    return f"{hidden} earlier departed clients not shown; send 'status all' to list them."


def _connected_words(connected: int, max_clients: int) -> str:
    """``2 of 3 clients connected``, or in words when the limit was lowered below the count."""
    if connected <= max_clients:
        return f"{connected} of {max_clients} clients connected"
    return (
        f"{connected} clients connected, over the limit of {max_clients} (it was lowered;"
        f" no one is admitted until fewer than {max_clients} are connected)"
    )


class ChatEventLike(Protocol):
    """The fields of a chat event that its line shows."""

    @property
    def id(self) -> int: ...
    @property
    def time(self) -> float: ...
    @property
    def scope(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def text(self) -> str: ...


def event_text(event: ChatEventLike) -> str:
    """``@<id> <time> <scope> <from>: <text>``, the sender's text sanitised.

    Names cannot hold spaces, ``>`` or ``:``, and the text cannot hold a line break, so
    everything before the first ``: `` is the server's word, whatever the text says.
    """
    when = format_time(int(event.time))
    return f"@{event.id} {when} {event.scope} {event.sender}: {sanitize(event.text)}"


def chat_event(event: ChatEventLike) -> bytes:
    """A chat event as it is delivered, encoded once for all its recipients."""
    return f"{event_text(event)}\n".encode()


def error(message: str) -> bytes:
    """An ``ERROR`` line."""
    return line(f"{ERROR_PREFIX}{message}")


def joined(room: str, members: int, recent: Iterable[ChatEventLike]) -> bytes:
    """The reply to ``/join``: the room, its size and its recent messages."""
    header = f"joined {room}: {members} member{'s' if members != 1 else ''}"
    return encode_lines(block_lines(header, map(event_text, recent)))


def rooms_reply(rooms: list[tuple[str, int]]) -> bytes:
    """The reply to ``/rooms``."""
    body = (f"{room} {count}" for room, count in rooms)
    return encode_lines(block_lines(f"rooms: {len(rooms)}", body))


def members_reply(room: str, names: list[str]) -> bytes:
    """The reply to ``/members``."""
    return encode_lines(block_lines(f"members of {room}: {len(names)}", names))


def who_reply(clients: list[tuple[str, list[str]]]) -> bytes:
    """The reply to ``who``: each connected client and its rooms."""
    body = (f"{name} {' '.join(rooms)}".rstrip() for name, rooms in clients)
    return encode_lines(block_lines(f"who: {len(clients)} connected", body))


def history_reply(scope: str, events: Sequence[ChatEventLike], more: bool) -> bytes:
    """The reply to ``/history``: oldest first; when ``more`` are kept, the header says
    how to get them: the next page is ``before`` the first id."""
    header = f"history {scope}: {len(events)} message{'s' if len(events) != 1 else ''}"
    if more and events:
        header += f" (older: /history {scope} before {events[0].id})"
    return encode_lines(block_lines(header, map(event_text, events)))


def resumed(name: str, rooms: list[str], missed: list[bytes], dropped: int) -> bytes:
    """The reply to ``/resume``: who one is again, and what came in meanwhile."""
    where = f" in {', '.join(rooms)}" if rooms else ""
    header = f"Resumed: you are {name} again{where}; {len(missed)} missed messages follow"
    if dropped:
        header += f" ({dropped} older ones were dropped)"
    body = (data.decode().rstrip("\n") for data in missed)
    return encode_lines(block_lines(header, body))


def renamed(name: str) -> bytes:
    """The reply to ``/nick``."""
    return line(f"You are now {name}.")


def left(room: str) -> bytes:
    """The reply to ``/leave``."""
    return line(f"left {room}")


def missed_events(count: int) -> bytes:
    """Sent to a cluster node's clients when it fell behind the cluster's capped event
    stream: up to ``count`` messages were trimmed before the node read them."""
    return line(
        f"WARNING up to {count} messages may not have reached you: this server fell behind"
        " the cluster's event stream."
    )


def slow_reader_warning(queued: int, limit: int) -> bytes:
    """Sent once to a client whose unread messages pass the soft limit."""
    return line(
        f"WARNING you are reading slowly: {queued} messages wait for you;"
        f" at {limit} you will be disconnected."
    )
