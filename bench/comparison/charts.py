"""Bar charts of the main figures, one panel each: medians with min-max error bars.

A server gets a bar only where it was measured, and tick labels are short numbers (12k,
1.5M), never an axis offset or exponent. matplotlib is optional (the bench extra), so it
is imported only to draw.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ackchat.bench.stats import median
from comparison.analysis import FIGURE, Figure, Results, Run, values
from comparison.report import short
from comparison.servers import ACKCHAT, EARLIER, HTTP, REDIS, STREAMS, UVLOOP

if TYPE_CHECKING:
    from matplotlib.figure import Figure as Chart

CHARTED = (
    "echo 3 conns / 1 in flight",
    "echo 50 / 1",
    "echo 50 / 16",
    "p99 at 50 / 1",
    "idle: memory per connection",
    "churn 50 parallel",
)
COLUMNS = 3
# One colour per server, the same in every panel whichever servers a panel shows.
COLOURS = {
    ACKCHAT: "tab:red",
    HTTP: "tab:orange",
    EARLIER: "tab:pink",
    UVLOOP: "tab:blue",
    STREAMS: "tab:gray",
    REDIS: "tab:green",
}


@dataclass(frozen=True)
class Bar:
    """One server's bar in a panel: the median of its rounds, and their min and max."""

    server: str
    middle: float
    low: float
    high: float


def available() -> bool:
    """Whether matplotlib is installed, so that a chart can be drawn."""
    return importlib.util.find_spec("matplotlib") is not None


def bars(results: Results, servers: Sequence[str], figure: Figure) -> list[Bar]:
    """A bar for each server measured on ``figure``, in order; the others are left out."""
    found = []
    for server in servers:
        numbers = values(results, server, figure)
        if numbers:
            found.append(Bar(server, median(numbers), min(numbers), max(numbers)))
    return found


def tick_label(value: float, _position: int | None = None) -> str:
    """An axis tick as a short number, called as matplotlib's ``FuncFormatter`` calls."""
    return short(value)


def chart(run: Run) -> Chart | None:
    """A panel for each charted figure that a server was measured on; None if none was."""
    from matplotlib.figure import Figure as Chart
    from matplotlib.ticker import FuncFormatter

    panels = [
        (FIGURE[label], found)
        for label in CHARTED
        if (found := bars(run.results, run.servers, FIGURE[label]))
    ]
    if not panels:
        return None
    rows = math.ceil(len(panels) / COLUMNS)
    drawing = Chart(figsize=(15, 4 * rows))
    axes = list(drawing.subplots(rows, COLUMNS, squeeze=False).flat)
    for axis in axes[len(panels) :]:
        drawing.delaxes(axis)
    for axis, (figure, found) in zip(axes, panels, strict=False):
        axis.bar(
            [bar.server for bar in found],
            [bar.middle for bar in found],
            yerr=[
                [bar.middle - bar.low for bar in found],
                [bar.high - bar.middle for bar in found],
            ],
            capsize=4,
            color=[COLOURS[bar.server] for bar in found],
        )
        axis.set_title(f"{figure.label} ({figure.unit})", fontsize=10)
        axis.yaxis.set_major_formatter(FuncFormatter(tick_label))
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    rounds = run.scale.rounds
    how = f"median of {rounds} rounds, min-max bars" if rounds > 1 else "one round"
    drawing.suptitle(f"ackchat vs redis-server and bare echo servers ({how})")
    drawing.tight_layout()
    return drawing


def draw(run: Run, path: Path) -> bool:
    """Save the chart as a PNG at ``path``; False (and no file) when nothing was measured."""
    drawing = chart(run)
    if drawing is None:
        return False
    drawing.savefig(path, dpi=100)
    return True
