"""Chat between clients: names, rooms, direct messages, history and resume. No I/O here."""
