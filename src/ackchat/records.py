"""What is kept of a session: its record, why it ended, and the ``status`` snapshot.

Plain data shared by the registry (which makes records), the backends (which store
them) and the server (which shows them); no behaviour and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class DisconnectReason(StrEnum):
    """Why a session ended; kept in its cache entry and shown by ``status``."""

    EXIT = "exit"
    CLOSED_BY_PEER = "closed by peer"
    RESET = "reset"
    IDLE_TIMEOUT = "idle timeout"
    LINE_TIMEOUT = "line timeout"
    RATE_LIMITED = "rate limited"
    SLOW_CONSUMER = "slow consumer"
    SERVER_SHUTDOWN = "server shutdown"
    # Told to reconnect elsewhere (a drain, SIGUSR1), then gone without ``exit``.
    DRAINED = "drained"
    # Disconnected by an operator (the admin API's DELETE /api/clients/{name}).
    KICKED = "kicked"
    CONNECTION_ERROR = "connection error"
    # Cluster mode: the node the client was on stopped beating (killed, or cut off from
    # Redis past the heartbeat TTL), and another node recorded the client as gone.
    NODE_LOST = "node lost"
    # Cluster mode: Redis lost the cluster's state, and the client's name went to another
    # session before its node could register it again; its node closed the connection.
    NAME_TAKEN = "name taken"


class SessionRecord(NamedTuple):
    """One client's session: its name, its peer address and when it began and ended.

    A named tuple rather than a frozen dataclass: every connection makes two, and a
    tuple is made three times faster.
    """

    number: int
    name: str
    address: str
    connected_at: float
    disconnected_at: float | None = None
    reason: DisconnectReason | None = None
    # Names this session had before its current one (a chosen name, a resumed one).
    earlier_names: tuple[str, ...] = ()
    # The cluster node the client is or was connected to ("" in embedded mode).
    node: str = ""


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """What ``status`` shows: sessions in connection order, and the totals."""

    sessions: list[SessionRecord]
    connected: int
    max_clients: int
    seen: int
    rejected: int
    dropped: int
    hidden: int
    # Set when this is an earlier view, shown because the shared state cannot be reached
    # now (cluster mode, Redis lost): when the view was taken, in seconds since the epoch.
    as_of: float | None = None


class ChatLoss(StrEnum):
    """Chat deliveries that failed, as ``status`` counts them."""

    SLOW_READERS = "slow readers disconnected"
    MESSAGES_DROPPED = "messages dropped"
