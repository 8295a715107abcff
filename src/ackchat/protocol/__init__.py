"""The pure protocol core: bytes to lines, lines to commands, replies to bytes. No I/O here."""
