"""The pure side of fanout through redis-server: RESP commands, and a subscriber's reader.

A subscriber sends ``SUBSCRIBE <channel>`` and gets the confirmation
``*3\\r\\n$9\\r\\nsubscribe\\r\\n$<len>\\r\\n<channel>\\r\\n:1\\r\\n``, then one push per
message published on the channel:
``*3\\r\\n$7\\r\\nmessage\\r\\n$<len>\\r\\n<channel>\\r\\n$<len>\\r\\n<payload>\\r\\n``.
Everything before the payload's length is the same bytes in every push, so
:class:`ChannelReader` checks it with one comparison instead of parsing it. Nothing here
does I/O, so it is tested on bytes (split at any point, as TCP may split them).
"""

from __future__ import annotations

# A push with a longer payload, or a line that does not end within this, is not ours.
MAX_PAYLOAD_BYTES = 1 << 20
# The longest RESP length or count: the digits of any 64-bit integer.
MAX_DIGITS = 20
# How much of unexpected bytes is kept to show the reader.
SAMPLE_BYTES = 80
CRLF = b"\r\n"
ERROR_MARK = b"-"


def command(*parts: bytes) -> bytes:
    """A command in RESP's array form, which carries any bytes (spaces, CR, LF) safely."""
    head = b"*%d\r\n" % len(parts)
    return head + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


def bulk_prefix(kind: bytes, channel: bytes) -> bytes:
    """The bytes that open every ``kind`` (``subscribe``, ``message``) reply for ``channel``."""
    return b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(kind), kind, len(channel), channel)


class ChannelReader:
    """One subscriber's stream, read incrementally: the confirmation, then message payloads.

    :meth:`feed` takes whatever a read returned and gives back the payloads of the pushes
    it completes; an incomplete push is kept for the next read. Bytes that are neither
    stop the reading: ``problem`` then holds them (a RESP error line, ``-ERR ...``, whole),
    and every later feed returns nothing.
    """

    __slots__ = ("_buffer", "_confirmation", "_header", "problem", "subscriptions")

    def __init__(self, channel: bytes) -> None:
        self._confirmation = bulk_prefix(b"subscribe", channel) + b":"
        self._header = bulk_prefix(b"message", channel) + b"$"
        self._buffer = b""
        # The channels this connection is subscribed to, from the confirmation (None: not yet).
        self.subscriptions: int | None = None
        self.problem: bytes | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the stream; return the payloads of the pushes they complete."""
        if self.problem is not None:
            return []
        buffer = self._buffer + data if self._buffer else data
        position = 0
        if self.subscriptions is None:
            number, position = self._number(buffer, 0, self._confirmation)
            if number is None:
                self._keep(buffer, 0)
                return []
            self.subscriptions = number
        payloads: list[bytes] = []
        header = self._header
        start = len(header)
        size = len(buffer)
        while position < size:
            if buffer.startswith(header, position):
                # The common case, a whole push: its payload's length, then the payload.
                digits = position + start
                end = buffer.find(CRLF, digits, digits + MAX_DIGITS + 2)
                if end > digits and buffer[digits:end].isdigit():
                    first = end + 2
                    last = first + int(buffer[digits:end])
                    if buffer.startswith(CRLF, last):
                        payloads.append(buffer[first:last])
                        position = last + 2
                        continue
            length, after = self._number(buffer, position, header)
            if length is None or not self._waits_for(buffer, after, length):
                break
            payloads.append(buffer[after : after + length])
            position = after + length + 2
        self._keep(buffer, position)
        return payloads

    def _number(self, buffer: bytes, position: int, prefix: bytes) -> tuple[int | None, int]:
        """The integer that ``prefix`` at ``position`` opens and where its line ends.

        ``(None, position)`` if the bytes there do not yet hold it whole, or are not it
        (``problem`` is then set).
        """
        if not buffer.startswith(prefix, position):
            self._check_start(buffer, position, prefix)
            return None, position
        digits = position + len(prefix)
        end = buffer.find(CRLF, digits)
        if end < 0:
            if len(buffer) - digits > MAX_DIGITS:
                self._unexpected(buffer, position)
            return None, position
        text = buffer[digits:end]
        if not text.isdigit() or len(text) > MAX_DIGITS:
            self._unexpected(buffer, position)
            return None, position
        return int(text), end + 2

    def _waits_for(self, buffer: bytes, start: int, length: int) -> bool:
        """Whether a payload of ``length`` bytes at ``start`` is whole (False: it is not yet)."""
        if length > MAX_PAYLOAD_BYTES:
            self._unexpected(buffer, start)
            return False
        end = start + length
        if len(buffer) < end + 2:
            return False
        if not buffer.startswith(CRLF, end):
            self._unexpected(buffer, start)
            return False
        return True

    def _check_start(self, buffer: bytes, position: int, prefix: bytes) -> None:
        """Set ``problem`` unless the bytes at ``position`` may still become ``prefix``."""
        rest = buffer[position:]
        if rest.startswith(ERROR_MARK):
            end = rest.find(CRLF)
            if end >= 0:
                self.problem = rest[:end]
            elif len(rest) > MAX_PAYLOAD_BYTES:
                self._unexpected(buffer, position)
        elif not prefix.startswith(rest[: len(prefix)]):
            self._unexpected(buffer, position)

    def _unexpected(self, buffer: bytes, position: int) -> None:
        self.problem = buffer[position : position + SAMPLE_BYTES]

    def _keep(self, buffer: bytes, position: int) -> None:
        """Hold the unread tail for the next feed (nothing, once there is a problem)."""
        self._buffer = b"" if self.problem is not None else buffer[position:]
