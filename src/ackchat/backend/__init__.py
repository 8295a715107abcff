"""The state a server's sessions share, behind one interface (see interface.py).

``memory`` keeps it in this process (the default); each operation may answer at once
or later (``pending``).
"""
