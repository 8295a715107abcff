"""Carry out one chat command against the hub and format its answer. No I/O here.

The connection hands over the command, the client's current name and itself as the
peer; it gets back the reply to send and, for ``/nick`` and ``/resume``, the name the
client goes by now, so that it can update the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from ackchat.chat.hub import ChatError, ChatHub, Peer
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


def answer(
    hub: ChatHub, name: str, command: Command, line: bytes, peer: Peer, now: float
) -> Answer:
    """Do ``command`` for the client called ``name``; chat errors become ``ERROR`` lines.

    A message that was delivered is answered like any line: the line exactly as it was
    sent, with `` ACK``.
    """
    try:
        if type(command) is Direct:
            hub.direct(name, command.recipient, command.text, now)
        elif type(command) is Broadcast:
            hub.broadcast(name, command.text, now)
        elif type(command) is Say:
            hub.say(name, command.room, command.text, now)
        elif type(command) is Join:
            return Answer(replies.joined(*hub.join(name, command.room, now)))
        elif type(command) is Leave:
            return Answer(replies.left(hub.leave(name, command.room, now)))
        elif type(command) is Rooms:
            return Answer(replies.rooms_reply(hub.rooms()))
        elif type(command) is Members:
            return Answer(replies.members_reply(*hub.members(command.room)))
        elif type(command) is Who:
            return Answer(replies.who_reply(hub.who()))
        elif type(command) is History:
            page = hub.history(name, command.scope, command.before, command.count)
            return Answer(replies.history_reply(page.scope, page.events, page.more))
        elif type(command) is Nick:
            new_name = hub.rename(name, command.name, now)
            return Answer(replies.renamed(new_name), new_name)
        elif type(command) is Resume:
            back = hub.resume(command.token, name, peer, now)
            reply = replies.resumed(back.name, back.rooms, back.missed, back.dropped)
            return Answer(reply, back.name)
        else:
            raise ValueError(f"not a chat command: {command!r}")
    except ChatError as problem:
        return Answer(replies.error(str(problem)))
    return Answer(replies.ack(line.decode()))
