"""Compare ackchat with redis-server, two bare echo servers and an earlier ackchat.

``python bench/compare.py [--quick] [--document] ...``; ``--help`` tells the rest. The
work is done by the ``comparison`` package beside this file; this script puts this
checkout's src/ first on the path, so the load generator is the ackchat measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src"


def run() -> int:
    """Import this checkout's ackchat ahead of any installed one, then compare."""
    sys.path.insert(0, str(SOURCE))
    from comparison.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
