"""The pure side of the fanout scenario: its message text, event lines and order check.

The sender writes ``/say <room> <n> <timestamp_ns>``; every receiver gets the event line
``@<id> <time> #room <sender>: <n> <timestamp_ns>`` and checks that the numbers arrive
complete and in order. Against redis-server the same text is the payload of ``PUBLISH``
and of the ``message`` pushes (:mod:`ackchat.bench.resp`). Nothing here does I/O or reads
a clock, so it is tested on bytes.
"""

from __future__ import annotations

from typing import NamedTuple

# The text of the last message: ``end <count>`` tells each receiver how many to expect.
END_WORD = b"end"
# The sender name the server writes on presence lines (joined, left, ...).
PRESENCE = b"*"


class ChatEvent(NamedTuple):
    """An event line, split: ``@<ident> <time> <scope> <sender>: <text>``."""

    ident: int
    scope: bytes
    sender: bytes
    text: bytes


def parse_event(line: bytes) -> ChatEvent | None:
    """The parts of an event line, or None if ``line`` is not one.

    The server writes everything before the first ``": "`` (the time has colons, but no
    colon followed by a space), so the text may contain anything.
    """
    if not line.startswith(b"@"):
        return None
    head, separator, text = line.partition(b": ")
    if not separator:
        return None
    parts = head.split(b" ")
    if len(parts) != 4 or not parts[0][1:].isdigit():
        return None
    return ChatEvent(int(parts[0][1:]), parts[2], parts[3], text)


def message_text(number: int, sent_ns: int, size: int = 0) -> bytes:
    """The text of message ``number`` sent at ``sent_ns`` (the sender's clock).

    Its time is zero-padded to make the text at least ``size`` bytes long (``--size``),
    so that a message is as big whichever server carries it.
    """
    text = b"%d %d" % (number, sent_ns)
    if len(text) >= size:
        return text
    return b"%d %s%d" % (number, b"0" * (size - len(text)), sent_ns)


def end_text(count: int) -> bytes:
    """The text of the final message: ``count`` messages were sent before it."""
    return END_WORD + b" %d" % count


def parse_message(text: bytes) -> tuple[int, int] | None:
    """``(number, sent_ns)`` from a message's text, or None if it is not one."""
    number, separator, sent = text.partition(b" ")
    if not separator or not number.isdigit() or not sent.isdigit():
        return None
    return int(number), int(sent)


def parse_end(text: bytes) -> int | None:
    """The count from the final message's text, or None if it is not the final message."""
    word, separator, count = text.partition(b" ")
    if word != END_WORD or not separator or not count.isdigit():
        return None
    return int(count)


class SequenceCheck:
    """One receiver's check that messages 0, 1, 2... arrive each once and in order.

    ``in_order`` counts messages that came when expected; a gap counts its missing
    messages as lost and is a violation, as is any number that comes again or late.
    """

    __slots__ = ("expected", "in_order", "lost", "total", "violations")

    def __init__(self) -> None:
        self.expected = 0
        self.in_order = 0
        self.lost = 0
        self.violations = 0
        self.total: int | None = None

    def receive(self, number: int) -> None:
        """Account for message ``number``."""
        if number == self.expected:
            self.in_order += 1
            self.expected += 1
        elif number > self.expected:
            self.lost += number - self.expected
            self.violations += 1
            self.in_order += 1
            self.expected = number + 1
        else:
            self.violations += 1

    def finish(self, total: int) -> None:
        """The sender says it sent ``total`` messages: any not yet seen are lost."""
        self.total = total
        if total > self.expected:
            self.lost += total - self.expected
            self.expected = total
        elif total < self.expected:
            # More numbers arrived than were sent: the end line or a message is wrong.
            self.violations += 1

    @property
    def finished(self) -> bool:
        """Whether the final message arrived."""
        return self.total is not None
