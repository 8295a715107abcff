"""Measure ackchat's cluster mode against its embedded mode, the same load in one run.

``python bench/cluster.py [--quick] [--document] ...``; ``--help`` tells the rest. The
work is done by ``clusterrun`` (the run and its report), ``clusterload`` (direct
messages) and ``clusterstats`` (the pure parts) beside this file, with compare.py's
``comparison`` package for starting processes; this script puts this checkout's src/
first on the path, so the load generator is the ackchat measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src"


def run() -> int:
    """Import this checkout's ackchat ahead of any installed one, then measure."""
    sys.path.insert(0, str(SOURCE))
    from clusterrun import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
