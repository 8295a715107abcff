"""Carry out one chat command against the backend and format its answer. No I/O here.

The session hands over the command, the client's current name and itself as the peer;
it gets back the reply to send and, for ``/nick`` and ``/resume``, the name the client
goes by now. The answer comes at once, or later (a :class:`Pending`) when the backend
must ask another process; either way a chat error becomes an ``ERROR`` line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ackchat.backend.interface import Backend
from ackchat.backend.pending import Pending, Result, then
from ackchat.chat.hub import ChatError, Peer
from ackchat.protocol import replies
from ackchat.protocol.commands import (
    Broadcast,
    Command,
    Direct,
    History,
    Join,
    Leave,
    Members,
    Nick,
    Resume,
    Rooms,
    Say,
    Who,
)


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply to a chat command, and the client's new name if it changed."""

    reply: bytes
    new_name: str | None = None
    # For a message that was delivered, its scope (direct, all or room), as metrics count it.
    delivered: str | None = None


def answer(
    backend: Backend, name: str, command: Command, line: bytes, peer: Peer
) -> Result[Answer]:
    """Do ``command`` for the client called ``name``; chat errors become ``ERROR`` lines.

    A message that was delivered is answered like any line: the line exactly as it was
    sent, with `` ACK``. Other errors (the backend unavailable) pass on to the caller.
    """
    try:
        done = _carry_out(backend, name, command, line, peer)
    except ChatError as problem:
        return _refused(problem)
    if isinstance(done, Pending):
        return _settled(done)
    return done


def _carry_out(
    backend: Backend, name: str, command: Command, line: bytes, peer: Peer
) -> Result[Answer]:
    if type(command) is Direct:
        return then(backend.direct(name, command.recipient, command.text), _acked(line, "direct"))
    if type(command) is Broadcast:
        return then(backend.broadcast(name, command.text), _acked(line, "all"))
    if type(command) is Say:
        return then(backend.say(name, command.room, command.text), _acked(line, "room"))
    if type(command) is Join:
        return then(
            backend.join(name, command.room), lambda joined: Answer(replies.joined(*joined))
        )
    if type(command) is Leave:
        return then(backend.leave(name, command.room), lambda room: Answer(replies.left(room)))
    if type(command) is Rooms:
        return then(backend.rooms(), lambda rooms: Answer(replies.rooms_reply(rooms)))
    if type(command) is Members:
        return then(
            backend.members(command.room), lambda found: Answer(replies.members_reply(*found))
        )
    if type(command) is Who:
        return then(backend.who(), lambda clients: Answer(replies.who_reply(clients)))
    if type(command) is History:
        page = backend.history(name, command.scope, command.before, command.count)
        return then(
            page, lambda page: Answer(replies.history_reply(page.scope, page.events, page.more))
        )
    if type(command) is Nick:
        return then(
            backend.rename(name, command.name),
            lambda new_name: Answer(replies.renamed(new_name), new_name),
        )
    if type(command) is Resume:
        return then(
            backend.resume(command.token, name, peer),
            lambda back: Answer(
                replies.resumed(back.name, back.rooms, back.missed, back.dropped), back.name
            ),
        )
    raise ValueError(f"not a chat command: {command!r}")


def _acked(line: bytes, scope: str) -> Callable[[object], Answer]:
    """The answer to a delivered message of ``scope``: the line as sent, with `` ACK``."""
    reply = Answer(replies.ack(line.decode()), delivered=scope)
    return lambda _: reply


def _refused(problem: ChatError) -> Answer:
    return Answer(replies.error(str(problem)))


def _settled(done: Pending[Answer]) -> Pending[Answer]:
    """A pending answer whose chat error, once it comes, is an ``ERROR`` line too."""
    settled: Pending[Answer] = Pending()

    def settle(source: Pending[Answer]) -> None:
        try:
            settled.set_result(source.result())
        except ChatError as problem:
            settled.set_result(_refused(problem))
        except Exception as error:
            settled.set_exception(error)

    done.add_done_callback(settle)
    return settled
