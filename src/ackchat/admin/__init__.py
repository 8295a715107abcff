"""``ackchat admin``: the admin HTTP API of a running server, from the terminal.

``options.py`` holds its help and options (``ackchat --help`` builds them without the
rest), ``api.py`` makes the calls (the standard library's HTTP client: no extra to
install), ``render.py`` turns the answers into plain text, and ``cli.py`` runs it.
"""
