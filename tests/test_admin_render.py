"""What ``ackchat admin`` prints and sends, without a server: pure functions of the JSON."""

from __future__ import annotations

from ackchat.admin.cli import set_value
from ackchat.admin.render import changed_text, clients_text, drain_text, status_text


def test_a_set_value_is_a_number_when_it_reads_as_one() -> None:
    assert (set_value("10"), set_value("2.5"), set_value("ten")) == (10, 2.5, "ten")
    assert (set_value("true"), set_value('"5"'), set_value("null")) == ("true", '"5"', "null")


def test_answers_read_as_plain_text() -> None:
    status = {
        "connected": 3, "max_clients": 2, "seen": 3, "rejected": 0, "dropped": 0, "hidden": 0,
        "refused": {"wrong passwords": 1}, "chat": {"messages dropped": 0},
        "limits": {"max_clients": 2}, "rooms": [{"name": "#dev", "members": 2}],
        "sessions": [
            {"name": "a\x1b[31m", "address": "-", "node": "",
             "connected_at": "2026-11-25T13:40:00+00:00", "disconnected_at": None,
             "reason": None, "earlier_names": ["Client01"]},
        ],
    }  # fmt: skip
    lines = status_text(status)
    assert lines[0].startswith("status: 3 clients connected, over the limit of 2")
    assert lines[0].endswith("; refused: 1 wrong passwords")
    assert lines[1].startswith("a\ufffd[31m - connected ")
    assert lines[1].endswith(" still connected (was Client01)")
    assert lines[2:] == ["rooms: #dev 2", "limits: max_clients 2"]
    clients = {
        "connected": 1, "max_clients": 3,
        "clients": [
            {"name": "bob", "address": "10.0.0.1:5", "node": "n2",
             "connected_at": "2026-11-25T13:40:00+00:00", "earlier_names": [],
             "idle_seconds": None, "lines_in": None, "lines_out": None, "rooms": []},
        ],
    }  # fmt: skip
    assert clients_text(clients)[1].split() == [
        "bob", "10.0.0.1:5", "2026-11-25T13:40:00+00:00", "-", "-", "-", "-",
    ]  # fmt: skip
    changed = {"changed": {"idle_timeout": {"from": 0.0, "to": 60.0}}, "limits": {}}
    assert changed_text(changed, "idle_timeout") == ["idle_timeout 0.0 -> 60.0"]
    drain = {"connections": 2, "timeout": 30.0, "redirect": "b:1"}
    assert drain_text(drain) == [
        "draining: 2 connections told to reconnect (to b:1); the server exits once they have"
        " left, or after 30 seconds"
    ]
