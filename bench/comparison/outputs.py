"""Where a run's report, JSON and chart go, and writing them there.

By default each run gets a new folder of its own, bench/runs/<UTC time>/ (git-ignored),
so that trying the comparison leaves the repository as it was; only ``--document``
writes the tracked docs/BENCHMARKS.md (between its markers) and bench/results/.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from comparison import ComparisonError, charts, report
from comparison.analysis import Run

BEGIN_MARK = "<!-- compare:begin -->"
END_MARK = "<!-- compare:end -->"


@dataclass(frozen=True)
class Layout:
    """The places in a checkout that a run writes to."""

    root: Path

    @property
    def document(self) -> Path:
        """The tracked report, rewritten between its markers by ``--document``."""
        return self.root / "docs" / "BENCHMARKS.md"

    @property
    def results(self) -> Path:
        """The tracked results folder, written by ``--document``."""
        return self.root / "bench" / "results"

    @property
    def runs(self) -> Path:
        """Where every other run gets a folder of its own."""
        return self.root / "bench" / "runs"


def new_folder(runs: Path, now: datetime) -> Path:
    """A new folder under ``runs`` named by the UTC time, 20261207-003612 (then -2, -3...)."""
    stem = now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    runs.mkdir(parents=True, exist_ok=True)
    folder, attempt = runs / stem, 1
    while True:
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            attempt += 1
            folder = runs / f"{stem}-{attempt}"


def with_section(text: str, section: str, name: str) -> str:
    """``text`` with ``section`` between its markers; ``name`` is the file, for the error."""
    head, begin, rest = text.partition(BEGIN_MARK)
    _, end, tail = rest.partition(END_MARK)
    if not begin or not end:
        raise ComparisonError(
            f"{name} lacks the {BEGIN_MARK} and {END_MARK} lines that mark where the results go."
        )
    return f"{head}{BEGIN_MARK}\n{section}\n{END_MARK}{tail}"


def check_document(layout: Layout) -> None:
    """Raise now, before any measuring, if ``--document`` could not write the document."""
    with_section(layout.document.read_text(encoding="utf-8"), "", str(layout.document))


def as_json(run: Run) -> str:
    """Everything the run measured, every round of every scenario, as JSON."""
    return json.dumps(
        {
            "command": run.command,
            "machine": dict(run.machine),
            "scale": asdict(run.scale),
            "servers": list(run.servers),
            "failures": list(run.failures),
            "rounds": run.results,
        },
        indent=1,
    )


def write_files(run: Run, folder: Path) -> None:
    """compare.txt, compare.json and (with matplotlib) compare.png in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.txt").write_text(report.text(run) + "\n", encoding="utf-8")
    (folder / "compare.json").write_text(as_json(run) + "\n", encoding="utf-8")
    if charts.available():
        charts.draw(run, folder / "compare.png")


def save(run: Run, layout: Layout, document: bool, now: datetime) -> Path:
    """Write the run's files; returns the folder they are in.

    Without ``document`` that is a new folder under ``layout.runs``, with report.md
    beside them; with it, the tracked results folder and the document's section.
    """
    if document:
        write_files(run, layout.results)
        text = layout.document.read_text(encoding="utf-8")
        section = with_section(text, report.markdown(run), str(layout.document))
        layout.document.write_text(section, encoding="utf-8")
        return layout.results
    folder = new_folder(layout.runs, now)
    write_files(run, folder)
    markdown = f"# ackchat benchmark comparison\n\n{report.markdown(run)}\n"
    (folder / "report.md").write_text(markdown, encoding="utf-8")
    return folder
