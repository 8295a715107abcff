"""The comparison behind ``python bench/compare.py``, one job per module.

``servers`` says what is compared and how each server starts, ``plan`` which scenarios
run at which scale, ``worktree`` checks the earlier ackchat out, ``processes`` starts and
stops servers, ``browser`` keeps the dashboard open beside ackchat http, ``rounds`` runs
the plan, ``analysis`` turns rounds into medians and ratios, ``report`` into tables,
``charts`` into bar charts, ``outputs`` decides where the files go, ``machine``
describes the computer, ``cli`` is the command line.
"""

from __future__ import annotations

from pathlib import Path

from ackchat.errors import AckchatError

# The project's root: bench/comparison/ is two levels below it.
ROOT = Path(__file__).resolve().parent.parent.parent


class ComparisonError(AckchatError):
    """The comparison cannot go on; the message is one plain sentence."""
