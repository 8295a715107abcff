"""Chat lines coalesced per event-loop iteration: one write per recipient, not per message.

A session holds the lines delivered to it during an iteration (``ServerSession.deliver``)
and asks to be flushed; this writes every such session's lines once the iteration's
callbacks have run, so a burst of messages to a room costs each member one system call,
as Redis writes each client's pending replies once per loop turn.
"""

from __future__ import annotations

import asyncio

from ackchat.server.session import ServerSession


class DeliveryFlusher:
    """The sessions with chat lines waiting, flushed together at the next loop turn."""

    __slots__ = ("_due", "_scheduled")

    def __init__(self) -> None:
        self._due: list[ServerSession] = []
        self._scheduled = False

    def flush_soon(self, session: ServerSession) -> None:
        """Write ``session``'s waiting lines after the callbacks already due have run."""
        self._due.append(session)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        due, self._due = self._due, []
        self._scheduled = False
        for session in due:
            session.flush_deliveries()
