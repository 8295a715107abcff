"""The pure parts of the HTTP side: JSON shaping, the token, the counts' structures, and
the settings that turn it on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ackchat.backend.pending import Pending, all_of
from ackchat.http.auth import AdminToken, admin_token
from ackchat.http.views import LocalClient, clients_view, error_view, status_view
from ackchat.protocol.replies import format_time
from ackchat.records import DisconnectReason, SessionRecord, StatusSnapshot
from ackchat.server.stats import LatencyHistogram
from ackchat.settings import ServerSettings, SettingsError, resolve
from ackchat.settings.values import listen_address, split_address

NOW = 1_700_000_000.0

ALICE = SessionRecord(1, "alice", "127.0.0.1:5000", NOW, earlier_names=("Client01",))
GONE = SessionRecord(2, "Client02", "[::1]:5001", NOW + 1, NOW + 2, DisconnectReason.KICKED)
SNAPSHOT = StatusSnapshot(
    sessions=[ALICE, GONE], connected=1, max_clients=3, seen=2, rejected=4, dropped=0, hidden=7
)


def test_status_view_has_the_totals_the_sessions_with_reasons_limits_and_rooms() -> None:
    view = status_view(
        SNAPSHOT,
        show_addresses=True,
        refused=[("wrong passwords", 2), ("address not allowed", 0)],
        chat_losses=[("messages dropped", 5)],
        limits={"max_clients": 3},
        rooms=[("#dev", 2)],
        counters={"admitted": 2},
    )
    assert view == {
        "connected": 1,
        "max_clients": 3,
        "over_limit": False,
        "seen": 2,
        "rejected": 4,
        "dropped": 0,
        "hidden": 7,
        "refused": {"address not allowed": 0, "wrong passwords": 2},
        "chat": {"messages dropped": 5},
        "limits": {"max_clients": 3},
        "rooms": [{"name": "#dev", "members": 2}],
        "counters": {"admitted": 2},
        "sessions": [
            {
                "name": "alice",
                "address": "127.0.0.1:5000",
                "node": "",
                "connected_at": format_time(int(NOW)),
                "disconnected_at": None,
                "reason": None,
                "earlier_names": ["Client01"],
            },
            {
                "name": "Client02",
                "address": "[::1]:5001",
                "node": "",
                "connected_at": format_time(int(NOW + 1)),
                "disconnected_at": format_time(int(NOW + 2)),
                "reason": "kicked",
                "earlier_names": [],
            },
        ],
    }


def test_hidden_addresses_are_a_dash() -> None:
    view = status_view(
        SNAPSHOT,
        show_addresses=False,
        refused=[],
        chat_losses=[],
        limits={},
        rooms=[],
        counters={},
    )
    assert [entry["address"] for entry in view["sessions"]] == ["-", "-"]


def test_clients_view_lists_the_connected_with_what_this_server_knows_of_them() -> None:
    elsewhere = SessionRecord(3, "bob", "10.0.0.2:7", NOW, node="node-b")
    snapshot = StatusSnapshot([ALICE, GONE, elsewhere], 2, 3, 3, 0, 0, 0)
    local = {"alice": LocalClient(1.23456, 4, 9, 40, 90)}
    view = clients_view(snapshot, [("ALICE", ["#dev"]), ("bob", [])], local, show_addresses=True)
    assert view["connected"] == 2
    alice, bob = view["clients"]
    assert alice == {
        "name": "alice",
        "address": "127.0.0.1:5000",
        "node": "",
        "connected_at": format_time(int(NOW)),
        "earlier_names": ["Client01"],
        "idle_seconds": 1.235,
        "lines_in": 4,
        "lines_out": 9,
        "bytes_in": 40,
        "bytes_out": 90,
        "rooms": ["#dev"],
    }
    # A client of another node: what only its node knows is null.
    assert (bob["node"], bob["idle_seconds"], bob["lines_in"], bob["rooms"]) == (
        "node-b", None, None, [],
    )  # fmt: skip


def test_an_error_names_its_field() -> None:
    assert error_view("bad", "max_clients") == {"error": "bad", "field": "max_clients"}
    assert error_view("bad") == {"error": "bad", "field": None}


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong", "Basic s3cret", "Bearer s3cre", "Bearer s3cretX"],
)
def test_a_token_matches_only_itself_as_a_bearer(header: str | None) -> None:
    assert not AdminToken("s3cret").matches(header)


def test_the_bearer_scheme_is_any_case() -> None:
    token = AdminToken("s3cret")
    assert token.matches("Bearer s3cret")
    assert token.matches("bearer  s3cret ")


def test_a_token_made_at_start_is_in_a_private_file_that_is_removed(tmp_path: Path) -> None:
    made = admin_token(ServerSettings(), {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert made.made_file is not None
    assert made.made_file.parent == tmp_path
    assert stat.S_IMODE(os.stat(made.made_file).st_mode) == 0o600
    assert made.made_file.read_text() == made.value + "\n"
    assert len(made.value) >= 40
    # Hexadecimal: never a leading '-' that argparse would take for an option.
    assert set(made.value) <= set("0123456789abcdef")
    again = admin_token(ServerSettings(), {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert again.value != made.value
    made.forget()
    assert not made.made_file.exists()


def test_a_given_token_is_used_as_it_is_and_no_file_is_made(tmp_path: Path) -> None:
    given = admin_token(ServerSettings(admin_token="from-env"), {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert (given.value, given.made_file) == ("from-env", None)
    path = tmp_path / "token"
    path.write_text("from-file\nignored\n")
    from_file = admin_token(ServerSettings(admin_token_file=str(path)))
    assert from_file.value == "from-file"
    from_file.forget()
    assert path.exists()
    assert list(tmp_path.iterdir()) == [path]


def test_token_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="give --admin-token-file or ACKCHAT_ADMIN_TOKEN"):
        ServerSettings(admin_token="a", admin_token_file="b")
    with pytest.raises(SettingsError, match="cannot read the admin token file"):
        admin_token(ServerSettings(admin_token_file=str(tmp_path / "missing")))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SettingsError, match="has an empty first line"):
        admin_token(ServerSettings(admin_token_file=str(empty)))


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("8080", "127.0.0.1:8080"),
        (8080, "127.0.0.1:8080"),
        ("0", "127.0.0.1:0"),
        (":9100", "127.0.0.1:9100"),
        ("0.0.0.0:9100", "0.0.0.0:9100"),
        ("[::1]:9100", "[::1]:9100"),
        ("localhost:80", "localhost:80"),
        ("", ""),
    ],
)
def test_the_http_address_is_host_and_port_with_a_local_default(text: object, address: str) -> None:
    assert listen_address(text) == address


@pytest.mark.parametrize("text", ["http", "::1:80", "host:", "host:70000", "a b:80", True, 1.5])
def test_a_bad_http_address_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"must be \[HOST:\]PORT"):
        listen_address(text)


def test_http_comes_from_the_flag_the_environment_or_the_file(tmp_path: Path) -> None:
    config = tmp_path / "ackchat.toml"
    config.write_text("[serve]\nhttp = 9100\nadmin_read_token = true\n")
    from_file = resolve(ServerSettings, {}, {}, config)
    assert (from_file.http, from_file.admin_read_token) == ("127.0.0.1:9100", True)
    from_env = resolve(ServerSettings, {}, {"ACKCHAT_HTTP": "[::1]:81"}, config)
    assert split_address(from_env.http) == ("::1", 81)
    assert resolve(ServerSettings, {"http": "82"}, {}, None).http == "127.0.0.1:82"
    assert resolve(ServerSettings, {}, {}, None).http == ""
    with pytest.raises(SettingsError, match=r"--http must be \[HOST:\]PORT, got 'x'"):
        resolve(ServerSettings, {"http": "x"}, {}, None)


def test_a_latency_histogram_counts_into_its_bucket_and_adds_up() -> None:
    histogram = LatencyHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(seconds)
    assert histogram.count == 4
    assert histogram.total == pytest.approx(2.65)
    assert histogram.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    with pytest.raises(ValueError, match="increasing"):
        LatencyHistogram((1.0, 0.5))


def test_all_of_settles_once_every_part_has() -> None:
    assert all_of([None, None]) is None
    first: Pending[None] = Pending()
    second: Pending[None] = Pending()
    combined = all_of([first, None, second])
    assert isinstance(combined, Pending)
    first.set_result(None)
    assert not combined.done
    second.set_result(None)
    assert combined.done
    assert combined.result() is None


def test_all_of_fails_with_the_first_error() -> None:
    first: Pending[None] = Pending()
    second: Pending[None] = Pending()
    combined = all_of([first, second])
    assert isinstance(combined, Pending)
    second.set_exception(ValueError("no"))
    first.set_exception(ValueError("later"))
    with pytest.raises(ValueError, match="no"):
        combined.result()
