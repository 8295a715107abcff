"""The settings of cluster mode, and the backend a server builds from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ackchat.backend.memory import MemoryBackend
from ackchat.backend.redis.backend import RedisBackend
from ackchat.server.assembly import ChatServer, node_id
from ackchat.settings import ServerSettings, SettingsError, resolve


def test_cluster_mode_is_set_from_flags_the_environment_or_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ackchat.toml"
    path.write_text('[serve]\nredis = "redis://10.0.0.9:6379/2"\nnode_max_clients = 40\n')
    env = {"ACKCHAT_CLUSTER_NAME": "blue", "ACKCHAT_NODE_ID": "left"}
    settings = resolve(ServerSettings, {"node_id": "right"}, env, path)
    assert (settings.redis, settings.cluster_name, settings.node_id) == (
        "redis://10.0.0.9:6379/2",
        "blue",
        "right",
    )
    assert settings.node_max_clients == 40
    defaults = resolve(ServerSettings, {}, {}, None)
    assert (defaults.redis, defaults.cluster_name, defaults.node_id) == ("", "ackchat", "")
    assert defaults.node_max_clients == 0


def test_a_redis_url_with_a_password_stays_out_of_the_settings_repr() -> None:
    settings = resolve(ServerSettings, {"redis": "redis://:hunter2@127.0.0.1:6379/0"}, {}, None)
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"redis": "http://127.0.0.1:6379"}, "--redis must be a Redis URL starting with redis://"),
        ({"cluster_name": "my cluster"}, "--cluster-name must be 1 to 64 letters"),
        ({"cluster_name": "{tag}"}, "--cluster-name must be 1 to 64 letters"),
        ({"node_id": "node one"}, "--node-id must be up to 100 characters, without spaces"),
        ({"node_max_clients": "-1"}, "--node-max-clients must be an integer of 0 or more"),
    ],
)
def test_bad_cluster_settings_are_one_sentence(flags: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resolve(ServerSettings, flags, {}, None)


def test_a_node_is_named_after_its_address_unless_told() -> None:
    assert node_id(ServerSettings(host="10.0.0.1", port=1234)) == "10.0.0.1:1234"
    assert node_id(ServerSettings(host="::1", port=1234)) == "[::1]:1234"
    assert node_id(ServerSettings(node_id="left", port=1234)) == "left"
    # Port 0 is the system's choice: two such nodes on one host still differ.
    first, second = (node_id(ServerSettings(host="127.0.0.1", port=0)) for _ in range(2))
    assert first.startswith("127.0.0.1:0-")
    assert first != second


def test_a_server_with_a_redis_url_is_a_cluster_node() -> None:
    settings = ServerSettings(port=1234, redis="redis://127.0.0.1:6379/0", node_id="left")
    backend = ChatServer(settings).backend
    assert isinstance(backend, RedisBackend)
    assert (backend.node_id, backend.max_clients) == ("left", 3)
    assert isinstance(ChatServer(ServerSettings()).backend, MemoryBackend)
