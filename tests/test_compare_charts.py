"""compare.py's charts: k/M tick labels, no axis offset, no bars for what was not measured."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comparison.analysis import FIGURE, Run
from comparison.charts import CHARTED, Bar, bars, chart, draw, tick_label
from comparison.servers import ACKCHAT, EARLIER, REDIS, UVLOOP
from fake_runs import SERVERS, fake_results, fake_run


@pytest.mark.parametrize(
    ("value", "label"),
    [(0.0, "0"), (2.5, "2.5"), (500.0, "500"), (25_000.0, "25k"), (1_250_000.0, "1.25M")],
)
def test_tick_labels_are_short_numbers(value: float, label: str) -> None:
    assert tick_label(value, 3) == label


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=1e11), st.integers(min_value=0, max_value=10))
def test_tick_labels_use_k_and_m_and_never_an_exponent(value: float, position: int) -> None:
    label = tick_label(value, position)
    assert "e" not in label.lower()
    if value >= 1_000_000:
        assert label.endswith(("M", "G")), label
    elif value < 999.5:
        assert label[-1].isdigit(), label


def test_only_measured_servers_get_a_bar() -> None:
    found = bars(fake_results(), SERVERS, FIGURE["echo 50 / 1"])
    # The streams echo server was measured on nothing.
    assert [bar.server for bar in found] == [ACKCHAT, EARLIER, UVLOOP, REDIS]
    assert found[0] == Bar(ACKCHAT, 115_000.0, 110_000.0, 120_000.0)
    idle = bars(fake_results(), SERVERS, FIGURE["idle: memory per connection"])
    assert [bar.server for bar in idle] == [ACKCHAT]


def test_every_charted_figure_exists() -> None:
    assert all(label in FIGURE for label in CHARTED)


def test_the_chart_leaves_out_what_was_not_measured_and_shows_no_offset() -> None:
    drawing = chart(fake_run())
    assert drawing is not None
    titles = {axis.get_title(): axis for axis in drawing.axes}
    # Only echo 50/1, its p99 and idle were measured: three panels, no empty ones.
    assert sorted(titles) == [
        "echo 50 / 1 (replies/s)",
        "idle: memory per connection (KB)",
        "p99 at 50 / 1 (µs)",
    ]
    drawing.canvas.draw()
    shown = {
        title: [label.get_text() for label in axis.get_xticklabels()]
        for title, axis in titles.items()
    }
    assert shown["echo 50 / 1 (replies/s)"] == [ACKCHAT, EARLIER, UVLOOP, REDIS]
    assert shown["idle: memory per connection (KB)"] == [ACKCHAT]
    for axis in drawing.axes:
        assert axis.yaxis.get_offset_text().get_text() == ""
        ticks = [label.get_text() for label in axis.get_yticklabels()]
        assert ticks
        assert all("e" not in tick for tick in ticks), ticks
    echo_ticks = [label.get_text() for label in titles["echo 50 / 1 (replies/s)"].get_yticklabels()]
    assert any(tick.endswith("k") for tick in echo_ticks), echo_ticks


def test_nothing_measured_draws_no_chart(tmp_path: Path) -> None:
    empty = Run("python bench/compare.py", fake_run().scale, SERVERS, {}, {})
    assert chart(empty) is None
    assert not draw(empty, tmp_path / "compare.png")
    assert not (tmp_path / "compare.png").exists()
    assert draw(fake_run(), tmp_path / "compare.png")
    assert (tmp_path / "compare.png").read_bytes().startswith(b"\x89PNG")
