"""How the interactive client shows each server line: styled fragments, safe for a terminal.

Other clients' messages are told apart from the replies to our own commands by style:
rooms, direct messages and broadcasts each have a colour, the sender is bold, presence
is dim, errors, warnings, goodbyes and drain notices are red. The styles are class names that the
terminal front end maps to colours. Nothing here does I/O.
"""

from __future__ import annotations

from ackchat.client.core import (
    ChatEvent,
    ChatLine,
    Draining,
    EndOfBlock,
    Event,
    Farewell,
    Greeting,
    Notice,
)
from ackchat.protocol.replies import ERROR_PREFIX

# (style, text) pairs, as prompt_toolkit's formatted text takes them.
Fragments = list[tuple[str, str]]

TIME = "class:time"
ROOM = "class:room"
DIRECT = "class:direct"
ALL = "class:all"
PRESENCE = "class:presence"
SENDER = "class:sender"
ALERT = "class:alert"
INFO = "class:info"
REPLACEMENT = "\ufffd"


def terminal_safe(text: str) -> str:
    """``text`` with every character a terminal would not print as itself replaced by U+FFFD.

    The server sanitises what others write, but a client does not have to trust that:
    escape sequences, carriage returns and bidirectional controls never reach the screen.
    """
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else REPLACEMENT for character in text)


def fragments(event: Event) -> Fragments:
    """The styled fragments that show ``event`` (nothing for the end of a block)."""
    if isinstance(event, EndOfBlock):
        return []
    if isinstance(event, ChatLine):
        return chat_fragments(event.event)
    text = terminal_safe(event.text)
    if isinstance(event, Notice | Farewell | Draining) or text.startswith(ERROR_PREFIX):
        return [(ALERT, text)]
    if isinstance(event, Greeting):
        return [(INFO, text)]
    return [("", text)]


def chat_fragments(event: ChatEvent) -> Fragments:
    """A chat event: short time, where, who (bold) and what, in the scope's colour."""
    when = (TIME, f"{short_time(event.time)} ")
    scope, sender, text = map(terminal_safe, (event.scope, event.sender, event.text))
    if event.is_presence:
        return [when, (PRESENCE, f"{scope} {text}")]
    if event.is_direct:
        source, _, target = sender.partition(">")
        return [
            when,
            (DIRECT, "direct "),
            (f"{DIRECT} {SENDER}", source),
            (DIRECT, f" \u2192 {target}"),
            ("", f": {text}"),
        ]
    style = ALL if scope == "all" else ROOM
    return [when, (style, f"{scope} "), (f"{style} {SENDER}", sender), ("", f": {text}")]


def short_time(stamp: str) -> str:
    """``HH:MM:SS`` of an ISO 8601 time, or the stamp itself if it is not one."""
    date, separator, rest = stamp.partition("T")
    if separator and len(date) == 10 and len(rest) >= 8:
        return rest[:8]
    return stamp
