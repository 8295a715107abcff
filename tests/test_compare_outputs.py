"""Where compare.py writes: a new folder by default, the tracked files only with --document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import pytest

import comparison.browser
import comparison.charts
import comparison.cli
from comparison import ComparisonError
from comparison.analysis import Results
from comparison.cli import main, sentence
from comparison.outputs import BEGIN_MARK, END_MARK, Layout, check_document, new_folder, save
from comparison.plan import Scenario
from comparison.servers import Server
from fake_runs import fake_results, fake_run

NOW = datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC)
DOCUMENT = f"# Benchmarks\n\nHow.\n\n{BEGIN_MARK}\nold table\n{END_MARK}\n\n## Later\n"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A checkout with the tracked document and results of an earlier run."""
    layout = Layout(tmp_path)
    layout.document.parent.mkdir(parents=True)
    layout.document.write_text(DOCUMENT, encoding="utf-8")
    layout.results.mkdir(parents=True)
    (layout.results / "compare.txt").write_text("old\n", encoding="utf-8")
    return layout


def tracked(layout: Layout) -> dict[str, str]:
    """The tracked files' contents, by path."""
    files = [layout.document, *sorted(layout.results.iterdir())]
    return {str(path): path.read_text(encoding="utf-8") for path in files if path.is_file()}


def test_without_document_a_run_writes_a_folder_of_its_own(layout: Layout) -> None:
    before = tracked(layout)
    folder = save(fake_run(), layout, document=False, now=NOW)
    assert tracked(layout) == before
    assert folder == layout.runs / "20261207-010203"
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# ackchat benchmark comparison\n\nCommand: ")
    assert "| echo 50 / 1 |" in report
    assert "echo 50 / 1" in (folder / "compare.txt").read_text(encoding="utf-8")
    data = json.loads((folder / "compare.json").read_text(encoding="utf-8"))
    assert data["rounds"] == fake_results()
    assert data["scale"]["rounds"] == 2


def test_with_document_the_section_between_the_markers_is_rewritten(layout: Layout) -> None:
    folder = save(fake_run(), layout, document=True, now=NOW)
    assert folder == layout.results
    assert not layout.runs.exists()
    document = layout.document.read_text(encoding="utf-8")
    assert document.startswith(f"# Benchmarks\n\nHow.\n\n{BEGIN_MARK}\nCommand: ")
    assert document.endswith(f"{END_MARK}\n\n## Later\n")
    assert "old table" not in document
    assert "| echo 50 / 1 |" in document
    assert (layout.results / "compare.txt").read_text(encoding="utf-8") != "old\n"


def test_runs_in_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    folders = [new_folder(tmp_path / "runs", NOW) for _ in range(3)]
    assert [folder.name for folder in folders] == [
        "20261207-010203",
        "20261207-010203-2",
        "20261207-010203-3",
    ]


def test_a_document_without_markers_is_refused_in_one_sentence(layout: Layout) -> None:
    check_document(layout)
    layout.document.write_text("# Benchmarks\n", encoding="utf-8")
    with pytest.raises(ComparisonError) as raised:
        check_document(layout)
    message = str(raised.value)
    assert message.endswith("lines that mark where the results go.")
    assert "\n" not in message


def no_rounds(failures: Sequence[str]) -> object:
    """A stand-in for run_rounds: the fake results, and ``failures``, with no servers run."""

    def run_rounds(
        servers: Sequence[Server], plan: Sequence[Scenario], rounds: int, log: TextIO
    ) -> tuple[Results, list[str]]:
        assert [server.name for server in servers][:1] == ["ackchat"]
        return fake_results(), list(failures)

    return run_rounds


def compare(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, arguments: list[str], failures: Sequence[str]
) -> int:
    monkeypatch.setattr(comparison.cli, "LAYOUT", layout)
    monkeypatch.setattr(comparison.cli, "run_rounds", no_rounds(failures))
    return main(["--quick", "--against", "none", *arguments])


def test_compare_prints_its_folder_at_the_end_and_leaves_the_tracked_files(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tracked(layout)
    assert compare(layout, monkeypatch, [], ()) == 0
    assert tracked(layout) == before
    (folder,) = layout.runs.iterdir()
    output = capsys.readouterr().out.splitlines()
    assert output[-1] == f"This run's report is in {folder}"
    assert output[0].startswith("figure ")


def test_a_failed_measurement_keeps_the_tracked_files_and_exits_1(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tracked(layout)
    failure = "redis-server: idle in round 1: the server is full."
    assert compare(layout, monkeypatch, ["--document"], (failure,)) == 1
    assert tracked(layout) == before
    (folder,) = layout.runs.iterdir()
    assert f"- {failure}" in (folder / "report.md").read_text(encoding="utf-8")
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == f"This run's report is in {folder}"
    assert captured.err.splitlines()[-1] == (
        "compare.py: 1 measurement failed (listed in the report), so the tracked files were"
        " left as they were."
    )


def test_document_writes_the_tracked_files_when_every_measurement_was_made(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compare(layout, monkeypatch, ["--document"], ()) == 0
    assert "| echo 50 / 1 |" in layout.document.read_text(encoding="utf-8")
    assert (layout.results / "compare.png").exists()
    assert not layout.runs.exists()
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"This run's report is in {layout.document} and {layout.results}"


def test_an_unknown_commit_is_one_sentence_before_anything_runs(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(comparison.cli, "LAYOUT", layout)
    assert main(["--quick", "--against", "no-such-commit-0"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert (
        errors[-1]
        == "compare.py: --against no-such-commit-0: there is no such commit in this repository."
    )
    assert not any("Error" in line or "Traceback" in line for line in errors)
    assert not layout.runs.exists()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--rounds", "0"],
        ["--duration", "0"],
        ["--warmup", "-1"],
        ["--duration", "nan"],
        ["--scenarios", "echo,nosuch"],
        ["--servers", "ackchat,nginx"],
        ["--servers", ""],
    ],
)
def test_bad_options_exit_2(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(arguments)
    assert raised.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("compare.py: error: argument ")


def test_document_refuses_a_partial_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--document", "--scenarios", "echo"])
    assert raised.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "compare.py: error: --document records the whole comparison: leave out --scenarios"
        " and --servers"
    )


def chosen_rounds(seen: dict[str, list[str]]) -> object:
    """A stand-in for run_rounds that notes the servers and scenarios it was given."""

    def run_rounds(
        servers: Sequence[Server], plan: Sequence[Scenario], rounds: int, log: TextIO
    ) -> tuple[Results, list[str]]:
        seen["servers"] = [server.name for server in servers]
        seen["plan"] = [scenario.key for scenario in plan]
        return fake_results(), []

    return run_rounds


def test_scenarios_and_servers_restrict_the_run(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, list[str]] = {}
    monkeypatch.setattr(comparison.cli, "LAYOUT", layout)
    monkeypatch.setattr(comparison.cli, "run_rounds", chosen_rounds(seen))
    monkeypatch.setattr(comparison.browser, "missing", lambda: None)
    monkeypatch.setattr(comparison.browser, "chromium_version", lambda: "156.0")
    # The earlier ackchat is not among the servers, so no commit is checked out.
    arguments = ["--quick", "--against", "no-such-commit-0", "--scenarios", "echo,churn"]
    assert main([*arguments, "--servers", "ackchat,http"]) == 0
    assert seen["servers"] == ["ackchat", "ackchat http"]
    assert seen["plan"] == ["warm-up", "echo 3/1", "echo 50/1", "echo 50/16", "churn 50"]
    (folder,) = layout.runs.iterdir()
    assert "chromium 156.0" in (folder / "report.md").read_text(encoding="utf-8")
    assert capsys.readouterr().err == ""


def test_without_chromium_ackchat_http_is_left_out_with_a_note(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, list[str]] = {}
    monkeypatch.setattr(comparison.cli, "LAYOUT", layout)
    monkeypatch.setattr(comparison.cli, "run_rounds", chosen_rounds(seen))
    monkeypatch.setattr(comparison.browser, "missing", lambda: "/usr/bin/chromium is missing")
    assert main(["--quick", "--against", "none", "--servers", "ackchat,http,uvloop"]) == 0
    assert seen["servers"] == ["ackchat", "uvloop echo"]
    assert capsys.readouterr().err.splitlines() == [
        "compare.py: /usr/bin/chromium is missing, so ackchat http is left out of the comparison."
    ]


def test_failures_are_sentences_without_exception_names() -> None:
    assert sentence(ComparisonError("redis-server did not listen on port 1 within 15 s.")) == (
        "redis-server did not listen on port 1 within 15 s."
    )
    assert sentence(PermissionError(13, "Permission denied", "/x/runs")) == (
        "/x/runs: Permission denied."
    )
    assert sentence(KeyError("rate")) == "failed unexpectedly: 'rate'."


def test_document_without_matplotlib_is_refused_before_anything_runs(
    layout: Layout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tracked(layout)
    monkeypatch.setattr(comparison.charts, "available", lambda: False)
    assert compare(layout, monkeypatch, ["--document"], ("never run",)) == 1
    assert tracked(layout) == before
    assert not layout.runs.exists()
    assert capsys.readouterr().err.splitlines() == [
        "compare.py: --document needs matplotlib for the chart: pip install -e '.[bench]'."
    ]
