"""The settings of ``ackchat serve``."""

from __future__ import annotations

from dataclasses import dataclass

from ackchat.admission import parse_network_list
from ackchat.settings.admin import check_one_token, read_token
from ackchat.settings.password import check_one_password, read_secret
from ackchat.settings.values import (
    SettingsError,
    boolean,
    choice,
    cluster_text,
    file_path,
    host_and_port,
    host_name,
    listen_address,
    node_name,
    non_negative_int,
    non_negative_number,
    option,
    port_number,
    positive_int,
    positive_number,
    redis_url,
    text,
)

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
LOOPS = ("auto", "uvloop", "asyncio")
ADDRESS_VISIBILITY = ("loopback", "all", "none")


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``ackchat serve`` can be told."""

    host: str = option(
        "127.0.0.1", host_name, "address to listen on; 0.0.0.0 or :: serves a network"
    )
    port: int = option(1234, port_number, "TCP port to listen on")
    max_clients: int = option(3, positive_int, "most clients connected at once")
    max_line_bytes: int = option(
        65536, positive_int, "longest line accepted, in bytes; longer ones get an error"
    )
    max_output_bytes: int = option(
        1048576, positive_int, "most unsent reply bytes per client before it is disconnected"
    )
    history_limit: int = option(
        10000, non_negative_int, "departed clients kept in the cache; the oldest are dropped"
    )
    status_recent: int = option(
        1000,
        non_negative_int,
        "most recently departed clients that 'status' lists ('status all' lists the cache)",
    )
    idle_timeout: float = option(
        0.0, non_negative_number, "disconnect a client silent for this many seconds; 0 turns it off"
    )
    shutdown_timeout: float = option(
        5.0,
        non_negative_number,
        "on SIGINT/SIGTERM, how long to wait for clients before closing them",
    )
    drain_timeout: float = option(
        30.0,
        non_negative_number,
        "on SIGUSR1 (drain), how long to wait for clients to leave before closing them",
    )
    drain_redirect: str = option(
        "",
        host_and_port,
        "on SIGUSR1, tell clients to reconnect to this HOST:PORT (else to the address they used)",
    )
    keepalive: bool = option(True, boolean, "TCP keepalive on client sockets to find dead peers")
    keepalive_idle: int = option(60, positive_int, "seconds of silence before keepalive probes")
    keepalive_interval: int = option(10, positive_int, "seconds between keepalive probes")
    keepalive_count: int = option(5, positive_int, "unanswered probes before the peer is dead")
    backlog: int = option(1024, positive_int, "pending connections the kernel may queue")
    reuse_port: bool = option(
        False, boolean, "SO_REUSEPORT: several servers on one host may listen on the same port"
    )
    # Hostile and faulty peers (docs/SECURITY.md)
    line_timeout: float = option(
        30.0, non_negative_number, "a line once started must end within this many seconds; 0 off"
    )
    rate_limit: float = option(
        200000.0, non_negative_number, "lines per second a client may send on average; 0 off"
    )
    rate_burst: int = option(400000, positive_int, "lines a client may send at once above the rate")
    rate_strikes: int = option(
        100, positive_int, "lines refused for the rate limit before the client is disconnected"
    )
    max_per_address: int = option(
        16, non_negative_int, "connections at once from one address; 0 off"
    )
    connect_rate: float = option(
        10.0, non_negative_number, "new connections per second from one address; 0 off"
    )
    connect_burst: int = option(20, positive_int, "connections one address may open at once")
    limit_exempt: tuple[str, ...] = option(
        ("127.0.0.0/8", "::1"),
        parse_network_list,
        "networks free of the per-address limits (comma-separated)",
    )
    allow: tuple[str, ...] = option(
        (),
        parse_network_list,
        "if set, only these addresses/networks may connect (CIDR, comma-separated)",
    )
    deny: tuple[str, ...] = option(
        (), parse_network_list, "addresses/networks that may not connect (CIDR, comma-separated)"
    )
    show_addresses: str = option(
        "loopback",
        choice(*ADDRESS_VISIBILITY),
        "who sees client addresses in status: all, none, or loopback (clients on this machine)",
    )
    password: str = option(
        "", text, "shared secret clients must send with 'auth' before anything else", secret=True
    )
    password_file: str = option("", file_path, "read the password from this file's first line")
    auth_timeout: float = option(
        30.0, non_negative_number, "seconds a client has to authenticate; 0 off"
    )
    auth_attempts: int = option(3, positive_int, "wrong passwords before the connection is closed")
    auth_delay: float = option(
        1.0, non_negative_number, "seconds before answering a wrong password, times the attempt"
    )
    tls_cert: str = option(
        "", file_path, "TLS certificate chain (PEM); with --tls-key turns on TLS"
    )
    tls_key: str = option("", file_path, "TLS private key (PEM)")
    tls_port: int = option(
        0, port_number, "serve TLS on this port beside the plain one; 0: the main port is TLS"
    )
    # Chat (docs/PROTOCOL.md)
    room_history: int = option(
        50, non_negative_int, "messages each room keeps for /join and /history"
    )
    direct_history: int = option(
        50, non_negative_int, "direct messages kept per client for /history direct"
    )
    resume_grace: float = option(
        60.0, non_negative_number, "seconds a lost client may come back with /resume; 0 off"
    )
    resume_buffer: int = option(
        200, non_negative_int, "messages kept for a lost client until it resumes"
    )
    queue_warn: int = option(
        1000, positive_int, "unread messages after which a slow reader is warned"
    )
    queue_limit: int = option(
        5000, positive_int, "unread messages after which a slow reader is disconnected"
    )
    # Cluster mode (docs/CLUSTER.md)
    redis: str = option(
        "",
        redis_url,
        "join a cluster through this Redis (redis://HOST:PORT/DB, rediss:// for TLS);"
        " empty: embedded mode, the state in this process",
        secret=True,
    )
    node_id: str = option(
        "",
        node_name,
        "this node's name in the cluster, shown in status",
        shown_default="HOST:PORT",
    )
    cluster_name: str = option(
        "ackchat",
        cluster_text,
        "prefix of the cluster's Redis keys, so that clusters can share one Redis",
    )
    node_max_clients: int = option(
        0, non_negative_int, "most clients connected to this node at once (cluster mode); 0 off"
    )
    heartbeat_ttl: float = option(
        5.0,
        positive_number,
        "cluster mode: seconds without a heartbeat after which a node counts as lost"
        " (it beats every third of that)",
    )
    loop: str = option(
        "auto", choice(*LOOPS), "event loop: auto (uvloop if installed), uvloop or asyncio"
    )
    log_level: str = option("info", choice(*LOG_LEVELS), "least severe log level shown")
    log_format: str = option(
        "text", choice(*LOG_FORMATS), "log lines as text, or as one JSON object per line"
    )
    # Operating it over HTTP (README, "Operating it"; docs/SECURITY.md)
    http: str = option(
        "",
        listen_address,
        "serve the admin API and /metrics over HTTP on [HOST:]PORT (host: 127.0.0.1)",
        shown_default="off",
    )
    admin_token: str = option("", text, "bearer token the admin API's changes need", secret=True)
    admin_token_file: str = option(
        "",
        file_path,
        "read the admin token from this file's first line; with neither, one is made at start"
        " and written to a file only you can read, whose path is logged",
    )
    admin_read_token: bool = option(
        False, boolean, "the admin API's read calls (status, clients, /metrics) need the token too"
    )

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("--tls-cert and --tls-key must be given together")
        if self.tls_port and not self.tls_cert:
            raise SettingsError("--tls-port needs --tls-cert and --tls-key")
        check_one_password(self.password, self.password_file)
        check_one_token(self.admin_token, self.admin_token_file, "--admin-token-file")

    @property
    def tls(self) -> bool:
        """Whether TLS is served (on the main port, or on the TLS port beside it)."""
        return bool(self.tls_cert)

    def read_password(self) -> str:
        """The shared secret, from the setting or the first line of the password file."""
        return read_secret(self.password, self.password_file)

    def read_admin_token(self) -> str:
        """The admin API's token, from the setting or the token file ("" for neither)."""
        return read_token(self.admin_token, self.admin_token_file)
