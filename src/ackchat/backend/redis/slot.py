"""Following a Redis Cluster to the master that holds the cluster's slot.

All of a cluster's keys share one hash slot (keys.py), so they live on one master. A
node may be given any master (or a replica) of a Redis Cluster: the first command on a
key is answered ``MOVED <slot> <host>:<port>``, naming the master that holds it, and the
connection is made again there. The same reply mid-run (the slot was migrated, a
replica took over) means the command did not run: it is sent again on the new master.
``ASK`` and ``TRYAGAIN`` (the slot is being migrated) and ``CLUSTERDOWN`` (the cluster
is between two states, a failover under way) mean it did not run either: it is sent
again after a pause. A plain Redis never answers so; nothing is asked on its way.
"""

from __future__ import annotations

from typing import NamedTuple, TypeGuard

from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

# Redirections in a row (with no answer between) after which the slot counts as
# unreachable, and the connection takes the usual way back (a reconnection with backoff).
MAX_REDIRECTS = 5
# Seconds before a command that met a migration goes again; doubled at each one in a row.
MIGRATION_PAUSE = 0.05

# A master's host and port.
Address = tuple[str, int]
# The replies that say a command did not run, and where or when it may.
Redirection = AskError | TryAgainError | ClusterDownError
REDIRECTIONS = (AskError, TryAgainError, ClusterDownError)


class Moved(NamedTuple):
    """What a ``MOVED`` reply says: the slot, and the master that holds it now."""

    slot: int
    master: Address


class SlotUnreachableError(ConnectionError):
    """The cluster's slot was redirected too many times in a row: Redis counts as lost."""


def is_redirection(answer: object) -> TypeGuard[Redirection]:
    """Whether ``answer`` says the command did not run because the slot is elsewhere or on
    its way there, or the cluster is down for a moment: ``MOVED``, ``ASK``, ``TRYAGAIN``
    or ``CLUSTERDOWN``."""
    return isinstance(answer, REDIRECTIONS)


def moved(error: Redirection, host: str) -> Moved | None:
    """Where a ``MOVED`` reply says the slot is, or None for a reply that leaves it where
    it is (``ASK``, ``TRYAGAIN``: a migration under way; ``CLUSTERDOWN``). An empty host
    (a master that does not know its own address) is the one the reply came from,
    ``host``."""
    if not isinstance(error, MovedError):
        return None
    return Moved(error.slot_id, (error.host or host, error.port))


def pause(redirects: int) -> float:
    """Seconds to wait, while a migration is under way, before sending again after the
    ``redirects``-th redirection in a row (``MOVED`` is followed at once)."""
    return MIGRATION_PAUSE * (1 << max(0, redirects - 1))


def shown(address: Address) -> str:
    """``host:port``, the host in brackets if it is IPv6."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
