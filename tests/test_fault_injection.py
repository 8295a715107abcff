"""Terminal injection: nothing a client sends reaches another terminal as control codes."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from ackchat.protocol.replies import sanitize, session_line
from ackchat.records import SessionRecord

BIDI_CONTROLS = {chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def is_unsafe(character: str) -> bool:
    return unicodedata.category(character) == "Cc" or character in BIDI_CONTROLS


def test_escape_sequences_bells_and_carriage_returns_are_replaced() -> None:
    assert sanitize("\x1b[2J\x07evil\rServer is\x9bfull\u202e") == (
        "\ufffd[2J\ufffdevil\ufffdServer is\ufffdfull\ufffd"
    )


def test_printable_text_is_untouched() -> None:
    text = "Hello, wörld! ✓ 你好 🙂 tabs\tare not"
    assert sanitize(text) == text.replace("\t", "\ufffd")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_no_control_character_survives(text: str) -> None:
    cleaned = sanitize(text)
    assert len(cleaned) == len(text)
    assert not any(is_unsafe(character) for character in cleaned)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_only_the_unsafe_characters_are_replaced(text: str) -> None:
    # Printable or not (a no-break space, a zero-width space): the rest is left as it is.
    expected = "".join("\ufffd" if is_unsafe(character) else character for character in text)
    assert sanitize(text) == expected


def test_unsafe_characters_are_replaced_amid_safe_ones_that_are_not_printable() -> None:
    assert sanitize("a\u00a0b\u200bc\x07d\u2066") == "a\u00a0b\u200bc\ufffdd\ufffd"


def test_status_lines_are_sanitised() -> None:
    record = SessionRecord(1, "Client01\x1b[31m", "evil\nhost:1", 0.0)
    text = session_line(record)
    assert "\x1b" not in text
    assert "\n" not in text
