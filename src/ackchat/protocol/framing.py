"""Split a TCP byte stream into lines, with a bound on line length.

A line ends with LF; one CR just before the LF is dropped, so CRLF clients work too.
The framer is sans-I/O: feed it whatever bytes a read returned, get back the complete
lines; an incomplete tail is kept for the next read. An over-long line is never
buffered whole: its bytes are discarded as they arrive and, when its newline comes,
the framer reports one :class:`LineTooLong` in its place, so the session goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Byte values: ``CR in data`` looks for one byte (a memchr), several times faster than
# ``b"\r" in data``, which runs a substring search.
CR = ord("\r")
LF = ord("\n")


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """Stands where a line longer than the limit was read and discarded."""

    length: int
    limit: int


class LineFramer:
    """Turns chunks of bytes into complete lines (without their line ending)."""

    __slots__ = ("_discarded", "_discarded_cr", "_max_line_bytes", "_partial")

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self._max_line_bytes = max_line_bytes
        self._partial = b""
        # Bytes of an over-long line dropped so far (0 while not discarding), and whether
        # the last of them was a CR, which is not counted if the LF comes next.
        self._discarded = 0
        self._discarded_cr = False

    @property
    def buffered_bytes(self) -> int:
        """How many bytes of an unfinished line are held (never more than the limit)."""
        return len(self._partial)

    @property
    def in_line(self) -> bool:
        """Whether a line has begun and not yet ended (kept or being discarded)."""
        return bool(self._partial) or self._discarded > 0

    def feed(self, data: bytes) -> Sequence[bytes | LineTooLong]:
        """Take the next bytes of the stream; return the lines they complete, in order."""
        if (
            data[-1:] == b"\n"
            and not self._partial
            and not self._discarded
            and len(data) <= self._max_line_bytes
            and CR not in data
        ):
            # The common case, whole short lines: nothing held, nothing to strip or check.
            lines = data.split(b"\n")
            lines.pop()
            return lines
        return self._feed_any(data)

    def _feed_any(self, data: bytes) -> list[bytes | LineTooLong]:
        if LF not in data:
            self._keep_tail(data)
            return []
        pieces = data.split(b"\n")
        tail = pieces.pop()
        if self._partial:
            pieces[0] = self._partial + pieces[0]
            self._partial = b""
        limit = self._max_line_bytes
        lines: list[bytes | LineTooLong] = []
        append = lines.append
        for piece in pieces:
            if piece.endswith(b"\r"):
                piece = piece[:-1]
            elif not piece and self._discarded_cr:
                self._discarded -= 1
            if self._discarded:
                append(LineTooLong(self._discarded + len(piece), limit))
                self._discarded = 0
                self._discarded_cr = False
            elif len(piece) > limit:
                append(LineTooLong(len(piece), limit))
            else:
                append(piece)
        self._keep_tail(tail)
        return lines

    def _keep_tail(self, data: bytes) -> None:
        """Hold an unfinished line, or count it as discarded once it passes the limit."""
        if self._discarded:
            if data:
                self._discarded += len(data)
                self._discarded_cr = data.endswith(b"\r")
            return
        partial = self._partial + data if self._partial else data
        # One byte of slack: a CR that turns out to precede the LF is not part of the line.
        if len(partial) > self._max_line_bytes + 1:
            self._discarded = len(partial)
            self._discarded_cr = partial.endswith(b"\r")
            self._partial = b""
        else:
            self._partial = partial
