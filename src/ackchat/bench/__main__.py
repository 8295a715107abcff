"""Allow ``python -m ackchat.bench``."""

from ackchat.bench.cli import main

raise SystemExit(main())
