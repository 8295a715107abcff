"""Settings: precedence flag > env > file > default, validation and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ackchat.cli import build_parser, main
from ackchat.settings import (
    AdminSettings,
    BenchSettings,
    ClientSettings,
    ServerSettings,
    SettingsError,
    config_path,
    env_name,
    flag_name,
    given_flags,
    load,
    resolve,
    settings_of,
)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ackchat.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_original() -> None:
    settings = resolve(ServerSettings, {}, {}, None)
    assert (settings.host, settings.port, settings.max_clients) == ("127.0.0.1", 1234, 3)
    assert settings.max_line_bytes == 65536
    assert settings.history_limit == 10000
    assert settings.idle_timeout == 0


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[serve]\nmax_clients = 7\nport = 4000\nhistory_limit = 5\n")
    env = {"ACKCHAT_PORT": "5000", "ACKCHAT_MAX_CLIENTS": "8"}
    settings = resolve(ServerSettings, {"max_clients": "9"}, env, path)
    assert settings.max_clients == 9
    assert settings.port == 5000
    assert settings.history_limit == 5
    assert settings.max_line_bytes == 65536


def test_the_client_reads_its_own_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[serve]\nport = 1\n[connect]\nport = 2\nhost = '::1'\n")
    assert resolve(ClientSettings, {}, {}, path) == ClientSettings(host="::1", port=2)


def test_flags_come_from_the_command_line_only_when_given() -> None:
    arguments = build_parser().parse_args(["serve", "--max-clients", "5", "--no-keepalive"])
    assert given_flags(arguments, ServerSettings) == {"max_clients": "5", "keepalive": False}


def test_config_file_from_flag_or_env(tmp_path: Path) -> None:
    arguments = build_parser().parse_args(["serve"])
    assert config_path(arguments, {"ACKCHAT_CONFIG": "x.toml"}) == Path("x.toml")
    arguments = build_parser().parse_args(["serve", "--config", "y.toml"])
    assert config_path(arguments, {"ACKCHAT_CONFIG": "x.toml"}) == Path("y.toml")


@pytest.mark.parametrize("value", ["0", "-3", "three", "2.5", ""])
def test_max_clients_must_be_a_positive_integer(value: str) -> None:
    with pytest.raises(SettingsError, match="--max-clients must be a positive integer"):
        resolve(ServerSettings, {"max_clients": value}, {}, None)


def test_a_bad_env_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="ACKCHAT_IDLE_TIMEOUT must be a number, 0 or more"):
        resolve(ServerSettings, {}, {"ACKCHAT_IDLE_TIMEOUT": "soon"}, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serve]\nmax_clients = 0\n", "max_clients in config file .* must be a positive"),
        ("[serve]\nmax_client = 4\n", "unknown setting 'max_client'.*'max_clients'\\?$"),
        ("[serve]\nzzz = 4\n", "unknown setting 'zzz' in \\[serve\\]$"),
        ("[server]\nport = 4\n", "unknown table or key 'server'.*did you mean 'serve'\\?$"),
        ("[serve\n", "not valid TOML"),
        ("[serve]\nkeepalive = 'maybe'\n", "must be true or false"),
        ("[serve]\nmax_clients = true\n", "must be a positive integer"),
    ],
)
def test_bad_config_files_are_explained(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resolve(ServerSettings, {}, {}, write_config(tmp_path, text))


def test_loading_says_what_the_file_set_and_what_overrode_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[serve]\nmax_clients = 4\nidle_timeout = 9\nport = 7\n")
    loaded = load(ServerSettings, {"max_clients": "5"}, {"ACKCHAT_PORT": "8"}, path)
    assert (loaded.settings.max_clients, loaded.settings.idle_timeout) == (5, 9.0)
    assert loaded.path == path
    assert loaded.in_file == {"max_clients", "idle_timeout", "port"}
    assert loaded.overridden == {
        "max_clients": "--max-clients",
        "port": "environment variable ACKCHAT_PORT",
    }


def test_missing_config_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        resolve(ServerSettings, {}, {}, tmp_path / "nope.toml")


def test_dashes_are_accepted_in_config_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[serve]\nmax-clients = 11\n")
    assert resolve(ServerSettings, {}, {}, path).max_clients == 11


@pytest.mark.parametrize("host", ["a b", "1.2.3.4:80", "::1:99999x", ""])
def test_hosts_are_checked(host: str) -> None:
    with pytest.raises(SettingsError, match="host"):
        resolve(ServerSettings, {"host": host}, {}, None)


@pytest.mark.parametrize("command", [[], ["serve"], ["connect"], ["bench"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: ackchat" in capsys.readouterr().out


def test_every_server_option_is_documented_with_its_env_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for env in ("ACKCHAT_MAX_CLIENTS", "ACKCHAT_IDLE_TIMEOUT", "ACKCHAT_MAX_OUTPUT_BYTES"):
        assert env in text


def test_a_bad_setting_exits_2_with_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--max-clients", "none"]) == 2
    error = capsys.readouterr().err
    assert error == "ackchat: --max-clients must be a positive integer, got 'none'\n"


def test_the_readme_documents_every_option() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for cls in (ServerSettings, ClientSettings, BenchSettings, AdminSettings):
        for setting in settings_of(cls):
            assert f"`{flag_name(setting.name)}`" in readme, setting.name
            assert f"`{env_name(setting.name)}`" in readme, setting.name


@pytest.mark.parametrize("flags", [{"ca": "ca.pem"}, {"insecure": True}])
def test_tls_options_without_tls_are_refused(flags: dict[str, object]) -> None:
    with pytest.raises(SettingsError, match="only apply with --tls"):
        resolve(ClientSettings, flags, {}, None)


def test_bench_options_come_from_the_environment_and_the_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[bench]\nscenario = 'fanout'\nroom = 'Ops'\n")
    settings = resolve(BenchSettings, {"pipeline": "4"}, {"ACKCHAT_PORT": "2000"}, path)
    assert (settings.scenario, settings.room, settings.pipeline, settings.port) == (
        "fanout", "#ops", 4, 2000,
    )  # fmt: skip
    with pytest.raises(SettingsError, match="--scenario must be one of"):
        resolve(BenchSettings, {"scenario": "chaos"}, {}, None)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"tls_cert": "cert.pem"}, "--tls-cert and --tls-key must be given together"),
        ({"tls_key": "key.pem"}, "--tls-cert and --tls-key must be given together"),
        ({"tls_port": "1235"}, "--tls-port needs --tls-cert and --tls-key"),
    ],
)
def test_tls_options_that_do_not_go_together(flags: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resolve(ServerSettings, flags, {}, None)


def test_the_backlog_setting_is_validated() -> None:
    assert resolve(ServerSettings, {"backlog": "64"}, {}, None).backlog == 64
    with pytest.raises(SettingsError, match="--backlog must be a positive integer"):
        resolve(ServerSettings, {"backlog": "0"}, {}, None)


def connect_settings(argv: list[str], env: dict[str, str], path: Path | None) -> ClientSettings:
    """The client's settings for ``ackchat connect <argv>``."""
    arguments = build_parser().parse_args(["connect", *argv])
    return resolve(ClientSettings, given_flags(arguments, ClientSettings), env, path)


def test_the_history_file_is_given_or_turned_off_from_every_source(tmp_path: Path) -> None:
    assert connect_settings([], {}, None).history_file == ""  # The default location.
    assert connect_settings(["--history-file", "h.txt"], {}, None).history_file == "h.txt"
    assert connect_settings(["--no-history-file"], {}, None).history_file is None
    # The last of the two flags wins, as with --x/--no-x.
    last_wins = connect_settings(["--no-history-file", "--history-file", "h"], {}, None)
    assert last_wins.history_file == "h"
    assert connect_settings([], {"ACKCHAT_HISTORY_FILE": "OFF"}, None).history_file is None
    assert connect_settings([], {"ACKCHAT_HISTORY_FILE": "./off"}, None).history_file == "./off"
    off = write_config(tmp_path, "[connect]\nhistory_file = false\n")
    assert connect_settings([], {}, off).history_file is None
    flag_wins = connect_settings(["--history-file", "mine"], {}, off)
    assert flag_wins.history_file == "mine"
    with pytest.raises(SettingsError, match=r"history_file in config file .* must be a file path"):
        connect_settings([], {}, write_config(tmp_path, "[connect]\nhistory_file = true\n"))


def test_connect_help_shows_the_history_file_and_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["connect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--history-file HISTORY_FILE" in text
    assert "--no-history-file" in text
    assert "(default: $XDG_STATE_HOME/ackchat/history, or ~/.local/state/ackchat/history;" in text


def test_0_turns_the_client_timeouts_off() -> None:
    default = ClientSettings()
    assert (default.connect_limit, default.reconnect_limit) == (10.0, 60.0)
    off = connect_settings(["--connect-timeout", "0", "--reconnect-timeout", "0"], {}, None)
    assert (off.connect_limit, off.reconnect_limit) == (None, None)


def test_the_node_options_come_from_every_source(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[serve]\nreuse_port = true\ndrain_timeout = 5\n")
    settings = resolve(ServerSettings, {}, {"ACKCHAT_DRAIN_REDIRECT": " [::1]:1235 "}, path)
    assert (settings.reuse_port, settings.drain_timeout, settings.drain_redirect) == (
        True, 5.0, "[::1]:1235",
    )  # fmt: skip
    assert resolve(ServerSettings, {}, {}, None).drain_redirect == ""
    given = resolve(ServerSettings, {"drain_redirect": "node2:1234"}, {}, None)
    assert given.drain_redirect == "node2:1234"


@pytest.mark.parametrize("value", ["node2", "node2:0", "::1:1234", "node2:http", "a b:1"])
def test_a_drain_redirect_must_be_host_and_port(value: str) -> None:
    with pytest.raises(SettingsError, match=r"--drain-redirect must be HOST:PORT"):
        resolve(ServerSettings, {"drain_redirect": value}, {}, None)


def test_admin_options_come_from_flags_the_environment_and_the_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[admin]\nurl = 'http://127.0.0.1:9100/'\njson = true\n")
    settings = resolve(AdminSettings, {}, {"ACKCHAT_ADMIN_TOKEN": "t0ken"}, path)
    assert (settings.url, settings.json, settings.read_token()) == (
        "http://127.0.0.1:9100", True, "t0ken",
    )  # fmt: skip
    assert "t0ken" not in repr(settings)
    with pytest.raises(SettingsError, match="--url must be an http:// or https:// URL"):
        resolve(AdminSettings, {"url": "127.0.0.1:9100"}, {}, None)
    with pytest.raises(SettingsError, match="give --token-file or ACKCHAT_ADMIN_TOKEN, not both"):
        resolve(AdminSettings, {"token_file": "t"}, {"ACKCHAT_ADMIN_TOKEN": "x"}, None)
    with pytest.raises(SettingsError, match="--timeout must be a number above 0"):
        resolve(AdminSettings, {"timeout": "0"}, {}, None)


def test_receiver_ports_are_a_list_of_ports_from_every_source(tmp_path: Path) -> None:
    config = tmp_path / "ackchat.toml"
    config.write_text("[bench]\nreceiver_ports = [1235, 1236]\n")
    assert resolve(BenchSettings, {}, {}, config).receiver_ports == (1235, 1236)
    env = {"ACKCHAT_RECEIVER_PORTS": "1237, 1238"}
    assert resolve(BenchSettings, {}, env, None).receiver_ports == (1237, 1238)
    with pytest.raises(SettingsError, match="--receiver-ports must be port numbers"):
        resolve(BenchSettings, {"receiver_ports": "1234,0"}, {}, None)
    with pytest.raises(SettingsError, match="--receiver-ports must be a port number"):
        resolve(BenchSettings, {"receiver_ports": "1234,x"}, {}, None)
