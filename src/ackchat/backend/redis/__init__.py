"""The Redis backend: several ackchat servers sharing one state through Redis.

``backend`` is the :class:`~ackchat.backend.redis.backend.RedisBackend` itself; ``keys``
names the keys, ``scripts`` holds the Lua that changes them, ``codec`` encodes what
they hold, ``commands`` batches a node's operations into round trips, ``fanout`` reads
the cluster's event stream and ``local`` delivers its events to this node's clients.
Importing it needs redis-py (the ``cluster`` extra).
"""
