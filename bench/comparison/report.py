"""A run as tables: plain text for the terminal and compare.txt, Markdown for the docs.

Numbers are short (3 significant digits, k/M) and right-aligned in their columns; what
takes more than a few words (the scale, what ``*`` means, failures) is a note below.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ackchat.bench.stats import format_markdown_table, format_table, median
from comparison.analysis import (
    FIGURE,
    FIGURES,
    REFERENCES,
    TARGETS,
    Run,
    browser_cpu,
    ratios,
    saturated,
    target_value,
    values,
)
from comparison.servers import ACKCHAT, HTTP

MARK = "*"
SIGNIFICANT = 3
SUFFIXES = ((10**9, "G"), (10**6, "M"), (10**3, "k"))
Table = tuple[list[str], list[list[str]]]


def short(value: float) -> str:
    """``value`` to 3 significant digits with k, M or G: 0.25, 950, 1.5k, 12.3M.

    Never an exponent, whatever the size: a tick label or a cell reads as it is.
    """
    rounded = Decimal(f"{value:.{SIGNIFICANT}g}")
    if rounded == 0:
        return "0"
    for size, suffix in SUFFIXES:
        if abs(rounded) >= size:
            return plain(rounded / size) + suffix
    return plain(rounded)


def plain(number: Decimal) -> str:
    """A decimal written out without an exponent or trailing zeros."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def cell(numbers: Sequence[float], mark: bool = False) -> str:
    """The median and (over several rounds) min-max, with ``*`` when ``mark``; ``-`` if none."""
    if not numbers:
        return "-"
    text = short(median(numbers))
    if len(numbers) > 1:
        text += f" ({short(min(numbers))}-{short(max(numbers))})"
    return text + (MARK if mark else "")


def figures_table(run: Run) -> Table:
    """Each figure for each server, then each ratio between two servers that both ran."""
    against = [
        (server, name, label)
        for server, name, label in REFERENCES
        if server in run.servers and name in run.servers
    ]
    headers = ["figure", "unit", *run.servers, *(label for _, _, label in against)]
    rows = []
    for figure in FIGURES:
        row = [figure.label, figure.unit]
        for server in run.servers:
            numbers = values(run.results, server, figure)
            row.append(cell(numbers, saturated(run.results, server, figure)))
        row.extend(cell(ratios(run.results, figure, name, server)) for server, name, _ in against)
        rows.append(row)
    return headers, rows


def targets_table(run: Run) -> Table:
    """Each target, ackchat's median for it and whether it is met."""
    rows = []
    for target in TARGETS:
        value = target_value(run.results, target)
        if value is None:
            rows.append([target.label, "-", "not measured"])
            continue
        unit = FIGURE[target.figure].unit
        suffix = "x" if target.against or unit == "x" else f" {unit}"
        rows.append([target.label, short(value) + suffix, "met" if target.met(value) else "MISSED"])
    return ["target (issues #3, #13, chat)", ACKCHAT, "result"], rows


def marked(table: Table) -> bool:
    """Whether any cell of ``table`` carries the saturation mark."""
    return any(cell.endswith(MARK) for row in table[1] for cell in row)


def scale_note(run: Run) -> str:
    """How big and how long the scenarios were, which the figure labels leave out."""
    scale = run.scale
    return (
        f"Scale: each timed scenario warmed up for {scale.warmup:g} s and measured"
        f" {scale.duration:g} s; idle held {scale.idle:,} connections; status filled a"
        f" cache of {scale.cache:,} entries; fanout sent to {scale.receivers:,} receivers"
        f" in one room (and to 100 and 10), 64 messages in flight (redis: PUBLISH to as"
        f" many subscribers); messages sent {scale.messages:,} lines through one connection."
    )


def http_note(run: Run) -> str:
    """What ackchat http is, and what its browser cost the machine it shared."""
    note = (
        f"{HTTP}: the same ackchat started with --http 127.0.0.1:PORT, with the dashboard"
        " open in headless chromium and live (connected to its feed, updates arriving)"
        " throughout its scenarios; the (http) targets are its figures over ackchat's,"
        " within each round. The browser runs on the same machine"
        f" ({run.machine.get('nproc', '?')} cores) as the server and the load generator,"
        " so these ratios are conservative."
    )
    cpu = browser_cpu(run.results)
    if cpu:
        note += (
            f" The browser (chromium and Playwright's driver) used {short(median(cpu))}% of a"
            f" core during its scenarios (median; at most {short(max(cpu))}%)."
        )
    return note


def rounds_line(run: Run) -> str:
    """How the cells were made from the rounds."""
    rounds = run.scale.rounds
    return f"median of {rounds} rounds (min-max in brackets)" if rounds > 1 else "one round"


def render(run: Run, as_markdown: bool) -> list[str]:
    """The blocks of the report: the results table, its notes, the targets, the failures."""
    table = format_markdown_table if as_markdown else format_table
    figures = figures_table(run)
    blocks = [table(*figures)]
    if marked(figures):
        star = "\\" + MARK if as_markdown else MARK
        blocks.append(
            f"{star} the load generator used ≥90% of a core in at least one round: the"
            " figure may be the generator's limit, not the server's."
        )
    blocks.append(scale_note(run))
    blocks.append(table(*targets_table(run)))
    if HTTP in run.servers:
        blocks.append(http_note(run))
    if run.failures:
        failed = "\n".join(f"- {failure}" for failure in run.failures)
        blocks.append(f"Failed, so left out of the figures:\n\n{failed}")
    return blocks


def text(run: Run) -> str:
    """The plain-text report, as printed at the end of a run and kept in compare.txt."""
    return "\n\n".join(render(run, as_markdown=False))


def markdown(run: Run) -> str:
    """The Markdown report: what docs/BENCHMARKS.md holds between its markers."""
    machine = ", ".join(f"{key} {value}" for key, value in run.machine.items())
    heading = [f"Command: `{run.command}` — {rounds_line(run)}.", f"Machine: {machine}."]
    return "\n\n".join([*heading, *render(run, as_markdown=True)])
