"""The HTTP side of a server: the admin API, ``/metrics``, the dashboard, the chat page
and its WebSocket (aiohttp, prometheus-client).

Imported only when ``--http`` is given, so that a server without it, the client and
``ackchat --help`` need neither library (the ``http`` extra).
"""
