"""Allow ``python -m ackchat``."""

from ackchat.cli import main

raise SystemExit(main())
