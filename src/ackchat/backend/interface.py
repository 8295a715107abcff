"""The one boundary between a server's sessions and the state they share.

A backend answers admission (a slot and a number), names (claimed, changed and
released in one place, case-insensitively), departures with their reasons, the
``status`` snapshot, and chat: rooms, messages and their fan-out, history, and the
sessions held for ``/resume``. The memory backend keeps all of it in this process (the
default); a Redis backend shares it between the nodes of a cluster.

Each operation returns its answer at once or as a :class:`~ackchat.backend.pending.Pending`
that is settled later; a session parks on a pending answer and goes on when it is
settled. A plain line's ``ACK`` never asks the backend. Chat operations that cannot be
done raise (or settle with) :class:`~ackchat.chat.hub.ChatError`; when the shared state
cannot be reached they raise (or settle with) :class:`BackendUnavailableError`.

The backend reads the time from the :class:`Clock` it is built with: wall-clock time
for what is shown, monotonic time for every deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ackchat.backend.pending import Result
from ackchat.chat.hub import ChatEvent, HistoryPage, Peer, Resumed
from ackchat.errors import AckchatError
from ackchat.protocol import replies
from ackchat.records import DisconnectReason, SessionRecord, StatusSnapshot

# A live setting's value, as backends share them: an integer or a number of seconds.
SettingValue = int | float
# Told of live settings the service changed elsewhere (Backend.watch_settings).
SettingsListener = Callable[[Mapping[str, SettingValue]], None]


class BackendUnavailableError(AckchatError):
    """The shared state cannot be reached now; the client is told to try again later."""


class Clock(Protocol):
    """Where a backend reads the time."""

    def wall(self) -> float:
        """Seconds since the epoch: the times that ``status`` and event lines show."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps: for deadlines."""


class Evictable(Protocol):
    """A peer whose connection a backend may end, as a server's session is: a cluster that
    lost its state may have given the client's name to another session meanwhile. A
    backend asks a peer for ``evict`` only if it has one (a peer without just gets the
    farewell line)."""

    def evict(self, farewell: bytes) -> None:
        """Send ``farewell`` and close the connection; the backend has no session of it
        any more, so there is no departure to record."""


class Kickable(Protocol):
    """A peer an operator may disconnect, as a server's session is: it says goodbye,
    closes and records its departure as ``kicked`` itself. A backend asks a peer for
    ``kick`` only if it has one (see :func:`kick_peer`)."""

    def kick(self) -> bool:
        """Disconnect the client as kicked; False if its session is ending already."""


def kick_peer(
    kick: Callable[[], bool] | None, deliver: Callable[[bytes], None], depart: Callable[[], object]
) -> bool:
    """Disconnect a peer as kicked: through its own ``kick`` if it has one, else by
    sending it the farewell and recording its departure with ``depart``."""
    if kick is not None:
        return kick()
    deliver(replies.line(replies.KICKED))
    depart()
    return True


@dataclass(frozen=True, slots=True)
class Admitted:
    """A client let in: its session record (name, number) and its resume token."""

    record: SessionRecord
    token: str


class Backend(Protocol):
    """What every backend provides; ``tests/test_backend_contract.py`` holds it to it."""

    async def start(self) -> None:
        """Get ready to answer (connect, load scripts); raises BackendUnavailableError if not."""

    async def close(self) -> None:
        """Release what :meth:`start` took; the backend answers nothing after this."""

    @property
    def max_clients(self) -> int:
        """How many clients may be connected at once."""

    def set_max_clients(self, value: int) -> Result[None]:
        """Change the limit for new admissions; lowering it disconnects nobody."""

    def set_history_sizes(
        self, history_limit: int, room_history: int, direct_history: int
    ) -> Result[None]:
        """Change how many departed sessions, room messages and direct messages per client
        are kept; lowering a size drops the oldest entries at once (departed sessions
        dropped so count in ``status`` as dropped from the cache). In a cluster the
        sizes are every node's (see :meth:`watch_settings`)."""

    def share_settings(self, values: Mapping[str, SettingValue]) -> Result[None]:
        """Live settings changed on this server (the idle timeout, the rate limits...):
        make them the service's; in a cluster every node hears of it and runs with them.
        The history sizes are shared by :meth:`set_history_sizes`."""

    def watch_settings(self, listener: SettingsListener) -> None:
        """Call ``listener`` with the live settings (by name, ``max_clients`` aside) that
        the service runs with whenever they change without this server: in a cluster,
        set on any node, or the cluster's own when this node joins it. A backend of one
        server never calls it: nothing changes without it."""

    def kick(self, name: str) -> Result[SessionRecord | None]:
        """An operator disconnects the client called ``name`` (any case), wherever it is
        connected: its server closes it as kicked (:func:`kick_peer`). Answers its
        session record, or None if no client of that name is connected anywhere (held
        sessions are not connected)."""

    def admit(self, address: str, peer: Peer) -> Result[Admitted | None]:
        """Take a slot and a number for a new client, or count a rejection (None) if full."""

    def depart(self, name: str, reason: DisconnectReason, hold: bool) -> Result[None]:
        """A client left for ``reason``: free its slot and record it; ``hold`` keeps its
        chat identity for ``/resume`` during the grace period."""

    def rename(self, name: str, new_name: str) -> Result[str]:
        """Give a connected client the name it chose, if nobody else has it (any case)."""

    def snapshot(self, recent_limit: int | None) -> Result[StatusSnapshot]:
        """Every connected session and up to ``recent_limit`` most recent departed ones."""

    def version(self) -> Result[tuple[int, ...]]:
        """Counts of the whole service that change whenever a client is admitted, departs
        or is turned away, or the limit changes: one cheap read (no snapshot), so that a
        dashboard can look for a change often, wherever in a cluster it happened."""

    def direct(self, sender: str, recipient: str, text: str) -> Result[None]:
        """A message to one client (held clients get it when they resume)."""

    def broadcast(self, sender: str, text: str) -> Result[int]:
        """A message to every other client; returns how many."""

    def say(self, sender: str, room: str, text: str) -> Result[None]:
        """A message to a room the sender is in."""

    def join(self, name: str, room: str) -> Result[tuple[str, int, list[ChatEvent]]]:
        """Enter a room: its canonical name, its member count and its recent messages."""

    def leave(self, name: str, room: str) -> Result[str]:
        """Leave a room; returns its canonical name."""

    def rooms(self) -> Result[list[tuple[str, int]]]:
        """Every room with its member count, by name."""

    def members(self, room: str) -> Result[tuple[str, list[str]]]:
        """A room's canonical name and its members' names."""

    def who(self) -> Result[list[tuple[str, list[str]]]]:
        """Every connected client with its rooms, by name."""

    def history(self, name: str, scope: str, before: int | None, count: int) -> Result[HistoryPage]:
        """A page of a room's messages, or of the client's direct messages."""

    def resume(self, token: str, current: str, peer: Peer) -> Result[Resumed]:
        """Move the connection named ``current`` into the held session of ``token``."""

    def expire(self) -> Result[list[str]]:
        """Forget held sessions whose grace period is over; returns their names."""
