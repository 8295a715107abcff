"""The admin HTTP API over real sockets on 127.0.0.1: every endpoint, its token, its
refusals, and changes made at the same time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import pytest

from ackchat.backend.interface import Backend
from ackchat.backend.memory import MemoryBackend
from ackchat.backend.pending import Pending
from ackchat.protocol import replies
from ackchat.server.assembly import memory_backend
from ackchat.server.reload import LIVE_SETTINGS
from adminhttp import TOKEN, AdminFactory, admin_api
from conftest import TEST_SETTINGS, ClientFactory
from lineclient import LineClient

__all__ = ["admin_api"]  # The fixture, imported to be used here.

UNAUTHORIZED = {"error": "unauthorized", "field": None}


async def named(connect: ClientFactory, admin: Any, name: str | None = None) -> LineClient:
    """A client that read its greeting (and took ``name``)."""
    client = await connect(admin.server)
    await client.greeting()
    if name is not None:
        assert await client.ask(f"/nick {name}") == f"You are now {name}."
    return client


async def test_status_is_what_the_status_command_shows_as_json(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api()
    alice = await named(connect, admin, "alice")
    await alice.send("/join dev")
    await alice.reply_block()
    leaver = await named(connect, admin)
    assert await leaver.ask("exit") == "Goodbye, Client02."
    await leaver.at_eof()

    status, body = await admin.call("GET", "/api/status", token=None)
    assert status == 200
    header = (await alice.status())[0]
    assert header.startswith("status: 1 of 3 clients connected, 2 seen, 0 rejected")
    assert (body["connected"], body["max_clients"], body["seen"], body["rejected"]) == (1, 3, 2, 0)
    assert (body["dropped"], body["hidden"], body["over_limit"]) == (0, 0, False)
    sessions = [(entry["name"], entry["reason"]) for entry in body["sessions"]]
    assert sessions == [("alice", None), ("Client02", "exit")]
    assert body["sessions"][0]["earlier_names"] == ["Client01"]
    assert body["sessions"][0]["address"] == f"127.0.0.1:{alice.local_port}"
    assert body["sessions"][0]["disconnected_at"] is None
    assert body["sessions"][1]["disconnected_at"] is not None
    assert body["rooms"] == [{"name": "#dev", "members": 1}]
    assert body["refused"]["wrong passwords"] == 0
    assert body["chat"] == {"messages dropped": 0, "slow readers disconnected": 0}
    assert set(body["limits"]) == set(LIVE_SETTINGS)
    assert body["limits"]["max_clients"] == 3
    counts = body["counters"]
    assert (counts["admitted"], counts["rejected_full"], counts["lines_in"]) == (2, 0, 3)
    assert counts["disconnections"]["exit"] == 1
    assert counts["chat_messages"] == {"direct": 0, "all": 0, "room": 0}


async def test_status_keeps_the_status_bounds_and_all_lists_the_whole_cache(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api(status_recent=2)
    for _ in range(4):
        client = await named(connect, admin)
        await client.ask("exit")
    staying = await named(connect, admin)
    _, recent = await admin.call("GET", "/api/status")
    assert [entry["name"] for entry in recent["sessions"]] == ["Client03", "Client04", "Client05"]
    assert recent["hidden"] == 2
    _, everything = await admin.call("GET", "/api/status?all=1")
    assert len(everything["sessions"]) == 5
    assert everything["hidden"] == 0
    assert (await staying.status())[-1].startswith("2 earlier departed clients not shown")
    status, refused = await admin.call("GET", "/api/status?all=perhaps")
    assert (status, refused["field"]) == (400, "all")
    assert refused["error"] == "all must be true or false, got 'perhaps'"


async def test_clients_are_listed_with_their_rooms_idle_time_and_traffic(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api()
    bob = await named(connect, admin)
    assert await bob.ask("one") == "one ACK"
    assert await bob.ask("two") == "two ACK"
    await bob.send("/join dev")
    assert await bob.reply_block() == ["joined #dev: 1 member"]
    idle = await named(connect, admin)
    status, body = await admin.call("GET", "/api/clients")
    assert status == 200
    assert (body["connected"], body["max_clients"]) == (2, 3)
    first, second = body["clients"]
    assert (first["name"], first["rooms"], first["node"]) == ("Client01", ["#dev"], "")
    assert first["address"] == f"127.0.0.1:{bob.local_port}"
    # Greeting (4 lines), two ACKs, the join block (2 lines); 3 lines in.
    assert (first["lines_in"], first["lines_out"]) == (3, 8)
    assert first["bytes_in"] == len(b"one\ntwo\n/join dev\n")
    assert first["idle_seconds"] >= 0
    assert (second["name"], second["rooms"], second["lines_in"]) == ("Client02", [], 0)
    assert "disconnected_at" not in first
    await idle.ask("exit")
    _, after = await admin.call("GET", "/api/clients")
    assert [client["name"] for client in after["clients"]] == ["Client01"]


async def test_addresses_are_shown_as_show_addresses_says(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api(show_addresses="none")
    await named(connect, admin)
    _, clients = await admin.call("GET", "/api/clients")
    _, status = await admin.call("GET", "/api/status")
    assert clients["clients"][0]["address"] == "-"
    assert status["sessions"][0]["address"] == "-"


async def test_reads_need_the_token_only_with_admin_read_token(admin_api: AdminFactory) -> None:
    open_reads = await admin_api()
    assert (await open_reads.call("GET", "/api/clients", token=None))[0] == 200
    assert (await open_reads.metrics())[0] == 200
    guarded = await admin_api(admin_read_token=True)
    for path in ("/api/status", "/api/clients"):
        assert await guarded.call("GET", path, token=None) == (401, UNAUTHORIZED)
        assert await guarded.call("GET", path, token="wrong") == (401, UNAUTHORIZED)
        assert (await guarded.call("GET", path))[0] == 200
    assert (await guarded.metrics())[0] == 401
    assert (await guarded.metrics("wrong"))[0] == 401
    assert (await guarded.metrics(TOKEN))[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/config", {"max_clients": 9}),
        ("DELETE", "/api/clients/Client01", None),
        ("POST", "/api/drain", None),
    ],
)
async def test_changes_need_the_token_and_a_refusal_gives_no_hint(
    admin_api: AdminFactory,
    connect: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: object,
) -> None:
    caplog.set_level(logging.INFO, logger="ackchat.http")
    admin = await admin_api()
    client = await named(connect, admin)
    for token in (None, "wrong", TOKEN[:-1], TOKEN + "x", f"{TOKEN} extra"):
        assert await admin.call(method, path, body, token=token) == (401, UNAUTHORIZED)
    async with admin.session.request(method, admin.url + path) as response:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    refusals = [record.getMessage() for record in caplog.records if "refused" in record.message]
    assert refusals[:2] == [
        f"admin API: refused {method} {path} from 127.0.0.1: no token",
        f"admin API: refused {method} {path} from 127.0.0.1: wrong token",
    ]
    assert not any(TOKEN in record.getMessage() for record in caplog.records)
    assert admin.server.settings.max_clients == 3
    assert admin.drains == []
    assert await client.ask("still here") == "still here ACK"


async def test_live_settings_change_are_logged_and_shown_and_lowering_kicks_nobody(
    admin_api: AdminFactory, connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ackchat.http")
    admin = await admin_api()
    clients = [await named(connect, admin) for _ in range(3)]
    status, body = await admin.call("PATCH", "/api/config", {"max_clients": 2, "idle_timeout": 60})
    assert status == 200
    assert body["changed"] == {
        "max_clients": {"from": 3, "to": 2},
        "idle_timeout": {"from": 0.0, "to": 60.0},
    }
    assert (body["limits"]["max_clients"], body["limits"]["idle_timeout"]) == (2, 60.0)
    assert "admin API (127.0.0.1): max_clients 3 -> 2, idle_timeout 0.0 -> 60.0" in caplog.messages
    for client in clients:
        assert await client.ask("still here") == "still here ACK"
    _, shown = await admin.call("GET", "/api/status")
    assert (shown["connected"], shown["max_clients"], shown["over_limit"]) == (3, 2, True)
    assert shown["limits"]["idle_timeout"] == 60.0
    assert (await clients[0].status())[0].startswith("status: 3 clients connected, over the limit")
    refused = await connect(admin.server)
    assert await refused.read_line() == replies.SERVER_FULL

    await admin.call("PATCH", "/api/config", {"max_clients": 4})
    fourth = await named(connect, admin)
    assert await fourth.ask("in") == "in ACK"
    _, same = await admin.call("PATCH", "/api/config", {"max_clients": 4})
    assert same["changed"] == {}
    assert "admin API (127.0.0.1): nothing changed" in caplog.messages


async def test_history_sizes_and_rate_limits_change_while_running(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api()
    client = await named(connect, admin)
    await client.send("/join dev")
    await client.reply_block()
    for number in range(4):
        assert await client.ask(f"/say dev m{number}") == f"/say dev m{number} ACK"
    changes = {"room_history": 2, "rate_limit": 1, "rate_burst": 1, "rate_strikes": 50}
    status, _ = await admin.call("PATCH", "/api/config", changes)
    assert status == 200
    await client.send("/history dev")
    history = await client.reply_block()
    assert [line.rsplit(": ", 1)[1] for line in history[1:]] == ["m2", "m3"]
    await client.send("a")
    assert await client.read_line() == replies.rate_limited(1.0).decode().rstrip("\n")


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({"max_clients": -1}, "max_clients", "max_clients must be a positive integer, got -1"),
        ({"max_clients": "ten"}, "max_clients", "max_clients must be an integer, got 'ten'"),
        ({"max_clients": 2.5}, "max_clients", "max_clients must be an integer, got 2.5"),
        ({"idle_timeout": False}, "idle_timeout", "idle_timeout must be a number, got False"),
        ({"history_limit": -5}, "history_limit", "history_limit must be an integer of 0 or more"),
        ({"max_clientz": 5}, "max_clientz", "unknown setting 'max_clientz'; did you mean"),
        ({"port": 80}, "port", "port cannot change while the server runs"),
        ({"max_clients": 5, "rate_limit": -1}, "rate_limit", "rate_limit must be a number, 0 or"),
        ({}, None, "the body must be a JSON object of settings"),
        ([1, 2], None, "the body must be a JSON object of settings"),
        ("max_clients=5", None, "the body must be a JSON object of settings"),
    ],
)
async def test_a_bad_value_is_400_naming_the_field_and_changes_nothing(
    admin_api: AdminFactory, body: object, field: str | None, error: str
) -> None:
    admin = await admin_api()
    before = admin.server.settings
    status, answer = await admin.call("PATCH", "/api/config", body)
    assert (status, answer["field"]) == (400, field)
    assert answer["error"].startswith(error)
    assert admin.server.settings is before


async def test_a_body_that_is_not_json_is_400(admin_api: AdminFactory) -> None:
    admin = await admin_api()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with admin.session.patch(
        admin.url + "/api/config", data=b"{max_clients: 5", headers=headers
    ) as response:
        assert response.status == 400
        assert await response.json() == {"error": "the body is not valid JSON", "field": None}


async def test_concurrent_changes_apply_one_after_another_and_none_is_lost(
    admin_api: AdminFactory,
) -> None:
    admin = await admin_api()
    wanted = list(range(10, 30))
    answers = await asyncio.gather(
        *(admin.call("PATCH", "/api/config", {"max_clients": value}) for value in wanted),
        admin.call("PATCH", "/api/config", {"idle_timeout": 7}),
        admin.call("PATCH", "/api/config", {"history_limit": 70}),
    )
    assert all(status == 200 for status, _ in answers)
    steps = {
        change["from"]: change["to"]
        for _, body in answers
        for name, change in body["changed"].items()
        if name == "max_clients"
    }
    # Each change started from what the one before it left: one chain from 3 through all.
    value, chain = 3, []
    while value in steps:
        value = steps[value]
        chain.append(value)
    assert sorted(chain) == wanted
    settings = admin.server.settings
    assert (settings.max_clients, settings.idle_timeout, settings.history_limit) == (
        chain[-1], 7.0, 70,
    )  # fmt: skip
    _, status = await admin.call("GET", "/api/status")
    assert status["max_clients"] == chain[-1]


class LaterBackend:
    """A memory backend whose every answer comes at the event loop's next turn, as a
    backend in another process answers: changes made at once would overlap."""

    def __init__(self, inner: MemoryBackend) -> None:
        self.inner = inner

    @property
    def max_clients(self) -> int:
        return self.inner.max_clients

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, operation: str) -> Callable[..., Pending[Any]]:
        method = getattr(self.inner, operation)

        def later(*arguments: Any) -> Pending[Any]:
            pending: Pending[Any] = Pending()

            def settle() -> None:
                pending.set_result(method(*arguments))

            asyncio.get_running_loop().call_soon(settle)
            return pending

        return later


async def test_changes_on_a_backend_that_answers_later_wait_for_each_other(
    admin_api: AdminFactory,
) -> None:
    backend = LaterBackend(memory_backend(TEST_SETTINGS))
    admin = await admin_api(cast(Backend, backend))
    answers = await asyncio.gather(
        *(admin.call("PATCH", "/api/config", {"max_clients": value}) for value in (5, 6, 7)),
        admin.call("PATCH", "/api/config", {"history_limit": 9}),
    )
    # The requests may reach the server in any order, but each change saw the one before
    # it: from 3, they make one chain through 5, 6 and 7, and the last one stays.
    after: dict[int, int] = {}
    for value, (_, body) in zip((5, 6, 7), answers[:3], strict=True):
        after[body["changed"]["max_clients"]["from"]] = value
    assert len(after) == 3, after
    chain = [3]
    for _ in range(3):
        chain.append(after[chain[-1]])
    assert sorted(chain[1:]) == [5, 6, 7]
    assert (backend.inner.max_clients, admin.server.settings.history_limit) == (chain[-1], 9)
    _, status = await admin.call("GET", "/api/status")
    assert status["max_clients"] == chain[-1]


async def test_a_kicked_client_is_told_and_recorded_as_kicked(
    admin_api: AdminFactory, connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ackchat.http")
    admin = await admin_api()
    alice = await named(connect, admin, "alice")
    other = await named(connect, admin)
    status, body = await admin.call("DELETE", "/api/clients/ALICE")
    assert (status, body) == (200, {"kicked": "alice"})
    assert await alice.read_line() == replies.KICKED
    assert await alice.at_eof()
    assert f"admin API (127.0.0.1): kicked alice (127.0.0.1:{alice.local_port})" in caplog.messages
    lines = await other.status()
    assert any(
        line.startswith("alice ") and line.endswith("(kicked) (was Client01)") for line in lines
    )
    _, shown = await admin.call("GET", "/api/status")
    assert shown["sessions"][0]["reason"] == "kicked"
    status, missing = await admin.call("DELETE", "/api/clients/alice")
    assert (status, missing) == (
        404,
        {"error": "no client called alice is connected here", "field": "name"},
    )
    replacement = await named(connect, admin, "alice")
    assert await replacement.ask("hi") == "hi ACK"


async def test_drain_asks_for_the_same_drain_as_sigusr1_once(
    admin_api: AdminFactory, connect: ClientFactory
) -> None:
    admin = await admin_api(drain_timeout=5.0)
    client = await named(connect, admin)
    status, body = await admin.call("POST", "/api/drain")
    assert (status, body) == (
        202,
        {"draining": True, "connections": 1, "timeout": 5.0, "redirect": None},
    )
    assert admin.drains == ["drain asked for over the admin API (127.0.0.1)"]
    assert await client.read_line() == "Server draining: please reconnect."
    status, again = await admin.call("POST", "/api/drain")
    assert (status, again) == (
        409,
        {"error": "the server is draining or stopping already", "field": None},
    )


async def test_unknown_paths_and_methods_are_answered_in_json(admin_api: AdminFactory) -> None:
    admin = await admin_api()
    status, body = await admin.call("GET", "/api/nothing")
    assert (status, body) == (404, {"error": "Not Found", "field": None})
    async with admin.session.put(
        admin.url + "/api/config", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        assert response.status == 405
        assert "PATCH" in response.headers["Allow"]
        assert (await response.json())["error"] == "Method Not Allowed"
