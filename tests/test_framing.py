"""The line framer: lines out of a byte stream, whatever the reads look like."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ackchat.protocol.framing import LineFramer, LineTooLong


def feed_all(framer: LineFramer, chunks: list[bytes]) -> list[bytes | LineTooLong]:
    lines: list[bytes | LineTooLong] = []
    for chunk in chunks:
        lines.extend(framer.feed(chunk))
    return lines


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:end] for start, end in pairwise(points)]


def reference_lines(data: bytes, limit: int) -> list[bytes | LineTooLong]:
    """What framing means, written the slow and obvious way."""
    result: list[bytes | LineTooLong] = []
    for piece in data.split(b"\n")[:-1]:
        text = piece[:-1] if piece.endswith(b"\r") else piece
        result.append(text if len(text) <= limit else LineTooLong(len(text), limit))
    return result


def test_two_lines_in_one_read_are_two_lines() -> None:
    assert LineFramer(100).feed(b"one\ntwo\n") == [b"one", b"two"]


def test_a_line_split_across_reads_is_one_line() -> None:
    framer = LineFramer(100)
    assert framer.feed(b"Hello, ") == []
    assert framer.feed(b"Server!\n") == [b"Hello, Server!"]


def test_crlf_loses_its_cr_and_a_lone_cr_stays() -> None:
    assert LineFramer(100).feed(b"a\r\nb\rc\n") == [b"a", b"b\rc"]


def test_cr_and_lf_in_separate_reads() -> None:
    framer = LineFramer(100)
    assert framer.feed(b"abc\r") == []
    assert framer.feed(b"\n") == [b"abc"]


def test_empty_lines_are_lines() -> None:
    assert LineFramer(100).feed(b"\n\r\n") == [b"", b""]


def test_incomplete_tail_is_kept() -> None:
    framer = LineFramer(100)
    assert framer.feed(b"done\npart") == [b"done"]
    assert framer.buffered_bytes == 4


def test_overlong_line_is_replaced_by_an_error_and_the_next_line_survives() -> None:
    framer = LineFramer(4)
    assert framer.feed(b"12345\nok\n") == [LineTooLong(5, 4), b"ok"]


def test_a_line_of_exactly_the_limit_passes_even_with_crlf() -> None:
    framer = LineFramer(4)
    assert framer.feed(b"1234") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [b"1234"]


def test_overlong_line_arriving_in_pieces_is_never_buffered_whole() -> None:
    framer = LineFramer(10)
    for _ in range(1000):
        assert framer.feed(b"x" * 100) == []
        assert framer.buffered_bytes <= 11
    assert framer.feed(b"\nnext\n") == [LineTooLong(100_000, 10), b"next"]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        LineFramer(0)


stream_bytes = st.lists(
    st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"xyz", "é".encode()]),
    max_size=200,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=stream_bytes, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_of_the_stream_gives_the_same_lines(data: bytes, cuts: list[int]) -> None:
    whole = feed_all(LineFramer(8), [data])
    assert feed_all(LineFramer(8), split_at(data, cuts)) == whole
    assert whole == reference_lines(data, 8)


@settings(max_examples=100, deadline=None)
@given(data=stream_bytes)
def test_one_byte_at_a_time_gives_the_same_lines(data: bytes) -> None:
    one_by_one = feed_all(LineFramer(8), [data[i : i + 1] for i in range(len(data))])
    assert one_by_one == reference_lines(data, 8)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_arbitrary_bytes_never_raise_and_stay_bounded(data: bytes, cuts: list[int]) -> None:
    framer = LineFramer(16)
    for chunk in split_at(data, cuts):
        for line in framer.feed(chunk):
            assert isinstance(line, LineTooLong) or len(line) <= 16
        assert framer.buffered_bytes <= 17
