"""ackchat: a small, production-grade TCP chat server and terminal client."""

__version__ = "0.1.0"
