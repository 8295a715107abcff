"""The settings of ``ackchat bench``: what a run is told, and each worker's share of it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ackchat.settings.values import (
    boolean,
    choice,
    host_name,
    non_negative_int,
    non_negative_number,
    option,
    port_list,
    port_number,
    positive_int,
    room_text,
    text,
)

BENCH_SCENARIOS = ("echo", "connect", "idle", "status", "fanout")
# Whose publish/subscribe the fanout scenario measures: ackchat's rooms, or redis-server's.
PUBSUB_SERVERS = ("ackchat", "redis")
# Connections when the command line does not say: most scenarios, and fanout's receivers.
DEFAULT_CONNECTIONS = 50
FANOUT_RECEIVERS = 1000


@dataclass(frozen=True)
class BenchSettings:
    """Everything ``ackchat bench`` can be told."""

    scenario: str = option("echo", choice(*BENCH_SCENARIOS), "what to measure")
    host: str = option("127.0.0.1", host_name, "server address")
    port: int = option(1234, port_number, "server port")
    connections: int = option(
        0,
        non_negative_int,
        "connections (echo, idle), parallel clients (connect) or receivers (fanout);"
        f" 0: {DEFAULT_CONNECTIONS}, or {FANOUT_RECEIVERS:,} for fanout",
    )
    pipeline: int = option(
        1, positive_int, "requests in flight per connection (fanout: messages in flight)"
    )
    warmup: float = option(1.0, non_negative_number, "seconds unmeasured")
    duration: float = option(
        5.0, non_negative_number, "seconds measured (idle: seconds to hold the clients)"
    )
    requests: int = option(
        0, non_negative_int, "stop after this many replies, cycles or fanout messages; 0: time"
    )
    workers: int = option(1, positive_int, "load generator processes (echo, connect, fanout)")
    line_protocol: bool = option(
        False, boolean, "the server sends no greeting (a plain line echo server, redis-server)"
    )
    request: str = option("", text, "send this line every time instead of varied ones")
    expect: str = option(
        "", text, "a reply is right if it ends with this (default: request + ' ACK')"
    )
    size: int = option(
        16, positive_int, "message bytes (fanout: at least, as '<n> <send time>' zero-padded)"
    )
    quit: str = option("", text, "line-protocol connect: the line that makes it close")
    server_pid: int = option(0, non_negative_int, "read this server process's memory; 0: none")
    cache_fill: int = option(
        10000, non_negative_int, "status: connect/exit cycles that fill the cache first"
    )
    status_clients: int = option(10, positive_int, "status: clients asking 'status all' in a loop")
    status_repeats: int = option(20, positive_int, "status: timed 'status all' requests alone")
    rate: float = option(0.0, non_negative_number, "fanout: messages per second at most; 0: any")
    room: str = option("#bench", room_text, "fanout: the room (--pubsub redis: the channel)")
    pubsub: str = option(
        "ackchat",
        choice(*PUBSUB_SERVERS),
        "fanout: whose publish/subscribe to measure: ackchat's rooms (/join, /say), or"
        " redis-server's SUBSCRIBE and PUBLISH (no greeting: --line-protocol is implied)",
    )
    receiver_ports: tuple[int, ...] = option(
        (),
        port_list,
        "fanout: receivers connect to these ports of --host in turn (a cluster's nodes);"
        " the sender stays on --port; none: all on --port",
    )
    json: bool = option(False, boolean, "print the results as JSON")
    # Not settings: whether this process runs the fanout sender (only the first worker),
    # and the whole run's connections when these settings are one worker's share (0: they
    # are not a share). Redis's sender checks each PUBLISH reaches all the receivers.
    sends: bool = field(default=True, repr=False)
    run_connections: int = field(default=0, repr=False)

    @property
    def redis_pubsub(self) -> bool:
        """Whether the run is a fanout through redis-server's SUBSCRIBE and PUBLISH."""
        return self.scenario == "fanout" and self.pubsub == "redis"

    @property
    def greeting(self) -> bool:
        """Whether the server greets each client (ackchat) or not (a line server, redis)."""
        return not self.line_protocol and not self.redis_pubsub

    @property
    def all_connections(self) -> int:
        """The whole run's connections (fanout: receivers), even in one worker's share."""
        return self.run_connections or self.connections

    @property
    def at_once(self) -> int:
        """Connections the run (or this worker's share) holds open at the same time."""
        if self.scenario == "fanout":
            return self.connections + (1 if self.sends else 0)
        if self.scenario == "status":
            return self.connections + self.status_clients
        return self.connections

    def with_default_connections(self) -> BenchSettings:
        """These settings, with ``connections`` 0 replaced by the scenario's default."""
        if self.connections:
            return self
        default = FANOUT_RECEIVERS if self.scenario == "fanout" else DEFAULT_CONNECTIONS
        return replace(self, connections=default)

    def share(self, worker: int) -> BenchSettings:
        """This worker's part of the connections and of the request limit."""

        def part(total: int) -> int:
            return total // self.workers + (1 if worker < total % self.workers else 0)

        if self.scenario == "fanout":
            # ``requests`` limits the one sender's messages: it is not shared out.
            return replace(
                self,
                connections=part(self.connections),
                sends=worker == 0,
                run_connections=self.connections,
            )
        return replace(self, connections=part(self.connections), requests=part(self.requests))
