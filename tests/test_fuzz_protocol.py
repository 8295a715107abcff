"""Fuzzing the whole protocol core: random bytes in random splits, framer then parser.

The invariant: every input gives lines, over-long-line markers and commands, or the
parser's own documented errors, and never another exception; and the result does not
depend on how the stream was split.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ackchat.protocol.commands import Command, CommandUsageError, InvalidUtf8Error, parse_command
from ackchat.protocol.framing import LineFramer, LineTooLong
from test_framing import split_at

Outcome = Command | LineTooLong | str


def outcomes(chunks: list[bytes]) -> list[Outcome]:
    framer = LineFramer(64)
    results: list[Outcome] = []
    for chunk in chunks:
        for line in framer.feed(chunk):
            if isinstance(line, LineTooLong):
                results.append(line)
                continue
            try:
                results.append(parse_command(line))
            except (InvalidUtf8Error, CommandUsageError) as error:
                results.append(type(error).__name__)
    return results


protocol_bytes = st.lists(
    st.one_of(
        st.binary(max_size=20),
        st.sampled_from(
            [b"\n", b"\r\n", b"status", b"/msg ", b"/join", b" all", b"\xff", b"exit", b"x" * 70]
        ),
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=protocol_bytes, cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_random_streams_in_random_splits(data: bytes, cuts: list[int]) -> None:
    assert outcomes(split_at(data, cuts)) == outcomes([data])
