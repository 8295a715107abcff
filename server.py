"""Start an ackchat server with the defaults, as the original did: ``python server.py``.

Options are those of ``ackchat serve`` (try ``python server.py --help``).
"""

import sys
from pathlib import Path

# Run from a clone without installing: the package lives in src/ beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from ackchat.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", *sys.argv[1:]]))
