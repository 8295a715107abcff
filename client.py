"""Start an ackchat client with the defaults, as the original did: ``python client.py``.

Options are those of ``ackchat connect`` (try ``python client.py --help``).
"""

import sys
from pathlib import Path

# Run from a clone without installing: the package lives in src/ beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from ackchat.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["connect", *sys.argv[1:]]))
