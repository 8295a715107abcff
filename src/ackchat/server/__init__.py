"""The asyncio server: a thin layer that wires the protocol core to TCP transports."""
