"""Run a real Redis Cluster for tests: three masters on free ports of 127.0.0.1, no replicas
but those a test adds.

Each master is a :class:`~redisserver.RedisServer` with ``--cluster-enabled yes``, its
cluster bus on a free port of its own (``--cluster-port``) and its cluster state in
``nodes.conf`` in its own temporary directory; ``redis-cli --cluster create`` then gives
them the 16,384 slots, and the cluster is ready once every master's ``CLUSTER INFO``
says ``cluster_state:ok`` (a bounded poll). All of an ackchat cluster's keys share one
hash slot (their ``{<cluster>}:`` prefix): :meth:`RedisCluster.url_for` finds the master
that owns it, :meth:`RedisCluster.move_slot_of` migrates it to another master under
running nodes, as a resharding does, and :meth:`RedisCluster.add_replica` and
:meth:`RedisCluster.fail_over` give a master a replica that then takes over from it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from backends import redis_url
from redisserver import POLL_INTERVAL, READY_TIMEOUT, RedisServer, free_port

MASTERS = 3
# Seconds redis-cli may take to create the cluster (it waits for the masters to meet).
CREATE_TIMEOUT = 30.0
# No replicas, and no question asked before the slots are given out.
CREATE_OPTIONS = ("--cluster-replicas", "0", "--cluster-yes")
# Milliseconds a MIGRATE may take, and keys asked for at once from a migrating slot.
MIGRATE_TIMEOUT = 5000
KEYS_AT_ONCE = 100_000


def _command(client: redis.Redis, *arguments: object) -> Any:
    """``client``'s answer to ``arguments`` (redis-py leaves ``execute_command`` untyped)."""
    return client.execute_command(*arguments)  # type: ignore[no-untyped-call]


def redis_cli_binary() -> str:
    """The redis-cli on PATH; the test fails, never skips, when it is not installed."""
    binary = shutil.which("redis-cli")
    if binary is None:
        pytest.fail(
            "redis-cli is not installed: the Redis Cluster tests need a real one"
            " (Debian/Ubuntu: apt-get install -y redis-tools; see README)",
            pytrace=False,
        )
    return binary


class RedisCluster:
    """A Redis Cluster of masters on 127.0.0.1, each owning a third of the slots."""

    def __init__(self, masters: list[RedisServer], server_binary: str, cli_binary: str) -> None:
        self.masters = masters
        self.replicas: list[RedisServer] = []
        self._server_binary = server_binary
        self._cli = cli_binary

    @classmethod
    def start(cls, server_binary: str, cli_binary: str) -> RedisCluster:
        """Start the masters, create the cluster and return it once its state is ok."""
        masters: list[RedisServer] = []
        try:
            for _ in range(MASTERS):
                masters.append(_start_node(server_binary))
            cluster = cls(masters, server_binary, cli_binary)
            cluster._create()
        except BaseException:
            for master in masters:
                master.stop()
            raise
        return cluster

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{master.port}" for master in self.masters]
        created = subprocess.run(
            [self._cli, "--cluster", "create", *addresses, *CREATE_OPTIONS],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CREATE_TIMEOUT,
            check=False,
        )
        assert created.returncode == 0, f"redis-cli --cluster create failed: {created.stdout}"
        self._until(
            lambda: all(
                "cluster_state:ok" in self._ask(m.port, "CLUSTER", "INFO") for m in self.masters
            ),
            "the Redis Cluster did not reach cluster_state:ok",
        )

    def _ask(self, port: int, *command: str) -> str:
        """What the master on ``port`` answers ``command``, as redis-cli prints it."""
        done = subprocess.run(
            [self._cli, "-h", "127.0.0.1", "-p", str(port), *command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT,
            check=True,
        )
        return done.stdout

    def owner_of(self, key: str) -> int:
        """The port of the master that owns the slot of ``key``.

        Each master's own line of ``CLUSTER NODES`` (flagged ``myself``) ends with the
        ranges of slots it serves: ``5461-10922``, or a single slot.
        """
        slot = self.slot_of(key)
        for master in (*self.masters, *self.replicas):
            for line in self._ask(master.port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" not in fields[2].split(","):
                    continue
                for served in fields[8:]:
                    first, _, last = served.partition("-")
                    if int(first) <= slot <= int(last or first):
                        return master.port
        raise AssertionError(f"no master owns slot {slot}")

    def url_for(self, cluster_name: str) -> str:
        """The URL of the master holding the keys of the ackchat cluster ``cluster_name``."""
        return redis_url(self.owner_of(f"{{{cluster_name}}}:"))

    def slot_of(self, key: str) -> int:
        """The hash slot of ``key``."""
        return int(self._ask(self.masters[0].port, "CLUSTER", "KEYSLOT", key))

    def start_moving(self, key: str, port: int) -> None:
        """Begin to migrate the slot of ``key`` to the master on ``port``: the target
        imports it, its owner migrates it (and answers ASK for the keys it has not)."""
        slot, source = str(self.slot_of(key)), self.owner_of(key)
        source_id = self._ask(source, "CLUSTER", "MYID").strip()
        target_id = self._ask(port, "CLUSTER", "MYID").strip()
        self._ask(port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        self._ask(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)

    def stop_moving(self, key: str) -> None:
        """Call off a migration of the slot of ``key`` that :meth:`start_moving` began."""
        for master in self.masters:
            self._ask(master.port, "CLUSTER", "SETSLOT", str(self.slot_of(key)), "STABLE")

    def move_slot_of(self, key: str, port: int) -> None:
        """Migrate the slot of ``key``, with its keys, to the master on ``port``.

        As ``redis-cli --cluster reshard`` does: the target imports the slot, the source
        migrates it, its keys move (all in one MIGRATE, so that no command sees them half
        moved), and every master is told the new owner, the two of the move first.
        """
        slot, source = self.slot_of(key), self.owner_of(key)
        self.start_moving(key, port)
        target_id = self._ask(port, "CLUSTER", "MYID").strip()
        with redis.Redis(port=source) as leaving:
            while keys := _command(leaving, "CLUSTER", "GETKEYSINSLOT", slot, KEYS_AT_ONCE):
                moving = ("127.0.0.1", port, "", 0, MIGRATE_TIMEOUT)
                _command(leaving, "MIGRATE", *moving, "KEYS", *keys)
        others = [at for at in self.others_than(source) if at != port]
        for at in (port, source, *others):
            self._ask(at, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
        assert self.owner_of(key) == port, f"slot {slot} did not move to the master on {port}"

    def add_replica(self, port: int) -> int:
        """Start a replica of the master on ``port`` and return its port once it is in
        sync and every master knows it."""
        replica = _start_node(self._server_binary)
        self.replicas.append(replica)
        master_id = self._ask(port, "CLUSTER", "MYID").strip()
        # The master's line says ``127.0.0.1:<port>@<bus port>``; MEET needs both ports.
        (myself,) = [
            line.split()[1]
            for line in self._ask(port, "CLUSTER", "NODES").splitlines()
            if line.startswith(master_id)
        ]
        bus = myself.partition("@")[2].partition(",")[0]
        self._ask(replica.port, "CLUSTER", "MEET", "127.0.0.1", str(port), bus)
        self._until(
            lambda: master_id in self._ask(replica.port, "CLUSTER", "NODES"),
            "the new node did not meet the master",
        )
        self._ask(replica.port, "CLUSTER", "REPLICATE", master_id)
        replica_id = self._ask(replica.port, "CLUSTER", "MYID").strip()

        def known_as_its_replica(port: int) -> bool:
            # The master on ``port`` has a line ``<id> <address> slave <master id> ...``
            # for the replica: only then does it vote for the replica's failover.
            for line in self._ask(port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if fields[0] == replica_id:
                    return "slave" in fields[2].split(",") and fields[3] == master_id
            return False

        self._until(
            lambda: (
                "master_link_status:up" in self._ask(replica.port, "INFO", "replication")
                and all(known_as_its_replica(m.port) for m in self.masters)
            ),
            "the replica did not come in sync with its master",
        )
        return replica.port

    def fail_over(self, port: int) -> None:
        """Make the replica on ``port`` take over from its master (``CLUSTER FAILOVER``: the
        master stops writes until the replica has them all), and wait until every master
        knows the old one for a replica."""
        (replica,) = [server for server in self.replicas if server.port == port]
        master_port = re.search(r"master_port:(\d+)", self._ask(port, "INFO", "replication"))
        assert master_port is not None, "the replica does not know its master"
        (old,) = [master for master in self.masters if master.port == int(master_port[1])]
        old_id = self._ask(old.port, "CLUSTER", "MYID").strip()
        self._ask(port, "CLUSTER", "FAILOVER")
        self.masters[self.masters.index(old)] = replica
        self.replicas[self.replicas.index(replica)] = old

        def taken_over() -> bool:
            for master in self.masters:
                for line in self._ask(master.port, "CLUSTER", "NODES").splitlines():
                    if line.startswith(old_id) and "slave" not in line.split()[2]:
                        return False
            if not self._ask(port, "ROLE").startswith("master"):
                return False
            # Every master agrees the cluster is whole again (it says CLUSTERDOWN between).
            return all(
                "cluster_state:ok" in self._ask(master.port, "CLUSTER", "INFO")
                for master in self.masters
            )

        self._until(taken_over, "the replica did not take over from its master")

    def _until(self, condition: Callable[[], bool], failure: str) -> None:
        """Poll ``condition`` until it holds, failing with ``failure`` after the bound."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not condition():
            assert time.monotonic() < deadline, failure
            time.sleep(POLL_INTERVAL)

    def others_than(self, port: int) -> list[int]:
        """The ports of the masters but the one on ``port``."""
        return [master.port for master in self.masters if master.port != port]

    def stop(self) -> None:
        """Stop every master and replica."""
        for server in (*self.masters, *self.replicas):
            server.stop()


def _start_node(server_binary: str) -> RedisServer:
    """A redis-server in cluster mode, its cluster bus on a free port of its own.

    A master sends a new replica its data at once: by default it waits 5 s
    (``repl-diskless-sync-delay``) for more replicas to share the transfer.
    """
    return RedisServer.start(
        server_binary,
        *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
        *("--cluster-port", str(free_port())),
        *("--repl-diskless-sync-delay", "0"),
    )
