"""compare.py's tables: short numbers, right-aligned columns, notes below the tables."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comparison.report import cell, figures_table, markdown, short, targets_table, text
from fake_runs import fake_http_run, fake_run

SUFFIX = {"k": 10**3, "M": 10**6, "G": 10**9}


def parsed(label: str) -> tuple[Decimal, str]:
    """A short number's digits and its suffix ('' for none)."""
    suffix = label[-1] if label[-1] in SUFFIX else ""
    return Decimal(label[: len(label) - len(suffix)]), suffix


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (0.25, "0.25"),
        (2.5234, "2.52"),
        (950.0, "950"),
        (1000.0, "1k"),
        (1500.0, "1.5k"),
        (12_345.0, "12.3k"),
        (999_600.0, "1M"),
        (1_222_500.0, "1.22M"),
        (-1500.0, "-1.5k"),
        (2.5e9, "2.5G"),
        (1.23e-7, "0.000000123"),
    ],
)
def test_short_numbers_on_known_values(value: float, label: str) -> None:
    assert short(value) == label


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_short_numbers_read_back_within_rounding_and_never_use_an_exponent(value: float) -> None:
    label = short(value)
    assert "e" not in label.lower()
    digits, suffix = parsed(label)
    # The largest suffix, G, goes on past 999G; below it a suffix keeps the digits short.
    if suffix:
        assert abs(digits) >= 1, label
        assert abs(digits) < 1000 or suffix == "G", label
    else:
        assert abs(digits) < 1000, label
    # Three significant digits: within half a unit of the third, at most 0.5% off.
    read, exact = digits * SUFFIX.get(suffix, 1), Decimal(value)
    assert abs(read - exact) <= abs(exact) * Decimal("0.005"), label


def test_cells_show_median_range_and_mark() -> None:
    assert cell([]) == "-"
    assert cell([1234.0]) == "1.23k"
    assert cell([3.0, 1.0, 2.0], mark=True) == "2 (1-3)*"


def alignments(report: str) -> list[list[str]]:
    """The alignment of each column ('---' left, '---:' right) of each Markdown table."""
    rules = [line for line in report.splitlines() if line.startswith("|---")]
    return [rule.strip("|").split("|") for rule in rules]


def columns(headers: list[str], rows: list[list[str]]) -> list[list[str]]:
    return [[row[index] for row in rows] for index in range(len(headers))]


def test_markdown_right_aligns_every_column_that_holds_numbers() -> None:
    run = fake_run()
    figures_rule, targets_rule = alignments(markdown(run))
    for table, rule in ((figures_table(run), figures_rule), (targets_table(run), targets_rule)):
        for cells, alignment in zip(columns(*table), rule, strict=True):
            has_numbers = any(cell[0].isdigit() for cell in cells)
            assert alignment == ("---:" if has_numbers else "---"), cells
    # figure and unit are text; then the servers and the ratios.
    assert figures_rule[:3] == ["---", "---", "---:"]
    assert len(figures_rule) == 2 + 5 + 3
    # A target that was not measured says so in the result column, not among the numbers.
    assert targets_rule == ["---", "---:", "---"]


def test_a_server_measured_on_nothing_shows_dashes() -> None:
    headers, rows = figures_table(fake_run())
    streams = headers.index("streams echo")
    assert {row[streams] for row in rows} == {"-"}


def test_ratios_are_taken_within_a_round() -> None:
    headers, rows = figures_table(fake_run())
    echo = next(row for row in rows if row[0] == "echo 50 / 1")
    # ackchat 110k and redis 100k in round 2, the only round redis ran.
    assert echo[headers.index("ackchat/redis")] == "1.1"
    assert echo[headers.index("ackchat/earlier")] == "1.15 (1.1-1.2)"
    assert echo[headers.index("ackchat")] == "115k (110k-120k)*"


def test_targets_show_the_median_with_its_unit_or_not_measured() -> None:
    _, rows = targets_table(fake_run())
    result = {row[0]: row[1:] for row in rows}
    assert result["(1) echo 50/1 ≥ 0.65x redis"] == ["1.1x", "met"]
    assert result["(5) idle ≤ 4 KB per connection"] == ["2.52 KB", "met"]
    assert result["(3) p99 at 50/1 ≤ 1.5x redis"] == ["0.9x", "met"]
    assert result["(6) churn ≥ 0.5x redis"] == ["-", "not measured"]


def test_notes_go_below_the_table_and_not_into_its_cells() -> None:
    run = fake_run(failures=("redis-server: echo 50/1 in round 1: the server is full.",))
    report = markdown(run)
    lines = report.splitlines()
    table_rows = [index for index, line in enumerate(lines) if line.startswith("| echo")]
    star = next(index for index, line in enumerate(lines) if line.startswith("\\* the load"))
    scale = next(index for index, line in enumerate(lines) if line.startswith("Scale: "))
    failed = lines.index("- redis-server: echo 50/1 in round 1: the server is full.")
    assert max(table_rows) < star < scale < failed
    for line in lines:
        if line.startswith("| "):
            assert all(len(cell) <= 40 for cell in line.strip("|").split(" | ")), line
    assert "200 receivers" in lines[scale]


def test_plain_text_right_aligns_numbers_under_their_header() -> None:
    lines = text(fake_run()).splitlines()
    header = lines[0]
    end = header.index("redis-server") + len("redis-server")
    echo = next(line for line in lines if line.startswith("echo 50 / 1 "))
    assert echo[:end].endswith("100k")
    assert not text(fake_run()).startswith("Command")
    assert "\\*" not in text(fake_run())


def test_ackchat_http_gets_its_column_its_ratio_and_its_targets() -> None:
    run = fake_http_run()
    headers, rows = figures_table(run)
    assert headers == ["figure", "unit", "ackchat", "ackchat http", "http/ackchat"]
    echo = next(row for row in rows if row[0] == "echo 50 / 1")
    assert echo[2:] == ["150k (100k-200k)", "146k (97k-196k)", "0.975 (0.97-0.98)"]
    _, targets = targets_table(run)
    result = {row[0]: row[1:] for row in targets}
    assert result["(http) echo 50/1 ≥ 0.95x ackchat"] == ["0.975x", "met"]
    assert result["(http) churn ≥ 0.95x ackchat"] == ["0.9x", "MISSED"]
    assert result["(http) echo 3/1 ≥ 0.95x ackchat"] == ["-", "not measured"]
    assert result["(1) echo 50/1 ≥ 0.65x redis"] == ["-", "not measured"]


def test_the_http_note_says_the_browser_shares_the_machine_and_what_it_used() -> None:
    blocks = text(fake_http_run()).split("\n\n")
    targets = next(index for index, block in enumerate(blocks) if block.startswith("target "))
    note = blocks[targets + 1]
    assert note.startswith("ackchat http: the same ackchat started with --http 127.0.0.1:PORT")
    assert "same machine (2 cores)" in note
    assert "conservative" in note
    assert "used 6% of a core during its scenarios (median; at most 10%)" in note
    assert "ackchat http:" not in text(fake_run())
    assert "http/ackchat" not in text(fake_run())
