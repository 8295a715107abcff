"""Run a real Redis Cluster for tests: three masters on free ports of 127.0.0.1, no replicas.

Each master is a :class:`~redisserver.RedisServer` with ``--cluster-enabled yes``, its
cluster bus on a free port of its own (``--cluster-port``) and its cluster state in
``nodes.conf`` in its own temporary directory; ``redis-cli --cluster create`` then gives
them the 16,384 slots, and the cluster is ready once every master's ``CLUSTER INFO``
says ``cluster_state:ok`` (a bounded poll). All of an ackchat cluster's keys share one
hash slot (their ``{<cluster>}:`` prefix), so a node is pointed at the master that owns
that slot: :meth:`RedisCluster.url_for` finds it.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from backends import redis_url
from redisserver import POLL_INTERVAL, READY_TIMEOUT, RedisServer, free_port

MASTERS = 3
# Seconds redis-cli may take to create the cluster (it waits for the masters to meet).
CREATE_TIMEOUT = 30.0
# No replicas, and no question asked before the slots are given out.
CREATE_OPTIONS = ("--cluster-replicas", "0", "--cluster-yes")


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

    def __init__(self, masters: list[RedisServer], cli_binary: str) -> None:
        self.masters = masters
        self._cli = cli_binary

    @classmethod
    def start(cls, server_binary: str, cli_binary: str) -> RedisCluster:
        """Start the masters, create the cluster and return it once its state is ok."""
        masters: list[RedisServer] = []
        try:
            for _ in range(MASTERS):
                masters.append(
                    RedisServer.start(
                        server_binary,
                        *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                        *("--cluster-port", str(free_port())),
                    )
                )
            cluster = cls(masters, cli_binary)
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
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(
            "cluster_state:ok" in self._ask(m.port, "CLUSTER", "INFO") for m in self.masters
        ):
            assert time.monotonic() < deadline, "the Redis Cluster did not reach cluster_state:ok"
            time.sleep(POLL_INTERVAL)

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
        slot = int(self._ask(self.masters[0].port, "CLUSTER", "KEYSLOT", key))
        for master in self.masters:
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

    def others_than(self, port: int) -> list[int]:
        """The ports of the masters but the one on ``port``."""
        return [master.port for master in self.masters if master.port != port]

    def stop(self) -> None:
        """Stop every master."""
        for master in self.masters:
            master.stop()
