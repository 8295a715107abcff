"""The HTTP side of a server: the admin API and ``/metrics`` (aiohttp, prometheus-client).

Imported only when ``--http`` is given, so that a server without it, the client and
``ackchat --help`` need neither library (the ``http`` extra).
"""
