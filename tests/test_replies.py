"""Reply formatting: exact wire text, block framing and the status listing."""

from __future__ import annotations

from datetime import datetime

from ackchat.protocol import replies
from ackchat.protocol.framing import LineTooLong
from ackchat.records import DisconnectReason, SessionRecord, StatusSnapshot


def test_ack_appends_to_the_exact_text() -> None:
    assert replies.ack("Hello, Server!") == b"Hello, Server! ACK\n"
    assert replies.ack("") == b" ACK\n"


def test_greeting_names_the_client_on_its_first_line_and_ends_with_a_dot() -> None:
    lines = replies.greeting("Client07").decode().split("\n")
    assert lines[0] == "Welcome! You are Client07."
    assert lines[-2:] == [".", ""]


def test_block_content_starting_with_a_dot_is_stuffed() -> None:
    lines = list(replies.block_lines("head", [".", "..x", "plain"]))
    assert lines == ["head", "..", "...x", "plain", "."]


def test_help_lists_every_command() -> None:
    text = replies.help_reply().decode()
    for word in ("status", "status all", "help", "exit", "ACK"):
        assert word in text
    assert text.endswith("\n.\n")


def test_errors_say_what_went_wrong() -> None:
    assert replies.line_too_long(LineTooLong(70000, 65536)) == (
        b"ERROR line too long: 70000 bytes, the limit is 65536; the line was discarded.\n"
    )
    assert replies.INVALID_UTF8.startswith(replies.ERROR_PREFIX)


def test_time_is_iso_8601_local_with_offset() -> None:
    text = replies.format_time(1_700_000_000)
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None
    assert parsed.timestamp() == 1_700_000_000


def snapshot(sessions: list[SessionRecord], hidden: int = 0) -> StatusSnapshot:
    connected = sum(record.disconnected_at is None for record in sessions)
    return StatusSnapshot(sessions, connected, 3, len(sessions) + hidden, 1, 0, hidden)


def test_status_lists_each_session_and_the_totals() -> None:
    here = SessionRecord(2, "Client02", "127.0.0.1:2", 1_700_000_100.0)
    gone = SessionRecord(1, "Client01", "[::1]:1", 1_700_000_000.0, 1_700_000_050.0,
                         DisconnectReason.IDLE_TIMEOUT)  # fmt: skip
    lines = list(replies.status_lines(snapshot([gone, here])))
    assert lines[0] == (
        "status: 1 of 3 clients connected, 2 seen, 1 rejected (server full),"
        " 0 dropped from the cache"
    )
    assert lines[1] == (
        f"Client01 [::1]:1 connected {replies.format_time(1_700_000_000)}"
        f" disconnected {replies.format_time(1_700_000_050)} (idle timeout)"
    )
    assert lines[2] == (
        f"Client02 127.0.0.1:2 connected {replies.format_time(1_700_000_100)} still connected"
    )
    assert lines[3:] == ["."]


def test_status_says_how_many_departed_entries_it_left_out() -> None:
    lines = list(replies.status_lines(snapshot([], hidden=12)))
    assert lines[1] == "12 earlier departed clients not shown; send 'status all' to list them."
    assert lines[-1] == "."


def test_plain_acks_answer_a_batch_of_ordinary_lines_in_one_piece() -> None:
    assert replies.plain_acks([b"a", b"", "é".encode()]) == "a ACK\n ACK\né ACK\n".encode()


def test_plain_acks_leave_anything_else_to_the_full_path() -> None:
    assert replies.plain_acks([b"a", b"status"]) is None
    assert replies.plain_acks([b"/msg x y"]) is None
    assert replies.plain_acks([b"\xff"]) is None
    assert replies.plain_acks([LineTooLong(9, 8)]) is None
