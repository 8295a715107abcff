"""What a chosen name or a room name may look like.

Names are compared without regard to case. ``ClientNN`` names are the server's to
assign, so nobody can choose one and pass for another client.
"""

from __future__ import annotations

import re

from ackchat.errors import AckchatError

NAME_RULE = "1 to 20 letters, digits, '_' or '-', starting with a letter"
ROOM_RULE = "'#' and 1 to 30 letters, digits, '_' or '-'"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,19}")
_ASSIGNED = re.compile(r"client\d+", re.IGNORECASE)
_ROOM = re.compile(r"#?([A-Za-z0-9_-]{1,30})")


class InvalidNameError(AckchatError):
    """A name or room name breaks the rules; the message says which rule."""


def check_name(name: str) -> str:
    """``name`` if a client may choose it, else :class:`InvalidNameError`."""
    if _NAME.fullmatch(name) is None:
        if any(character.isspace() for character in name):
            raise InvalidNameError(
                f"invalid name {name!r}: a name cannot contain spaces; use {NAME_RULE}"
            )
        raise InvalidNameError(f"invalid name {name!r}: use {NAME_RULE}")
    if _ASSIGNED.fullmatch(name):
        raise InvalidNameError(f"invalid name {name!r}: ClientNN names are assigned by the server")
    return name


def name_key(name: str) -> str:
    """The form under which names are compared (case-insensitive)."""
    return name.casefold()


def room_name(text: str) -> str:
    """The canonical room name (``#`` and lower case) for ``lobby``, ``#Lobby``…"""
    match = _ROOM.fullmatch(text)
    if match is None:
        raise InvalidNameError(f"invalid room {text!r}: use {ROOM_RULE}")
    return "#" + match.group(1).lower()
