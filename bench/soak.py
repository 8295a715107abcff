"""Soak test: well-behaved and hostile clients against one server, then check for damage.

Starts ``ackchat serve`` on 127.0.0.1 (loopback only), runs for ``--duration`` seconds
(default 60) a mix of well-behaved clients that check every ACK in order and hostile
ones (slow senders, floods that never read, junk, resets, over-long lines, storms from
other loopback addresses, clients leaving in the middle of long replies), then checks:
the connected count in ``status`` equals the connections really open, the server holds
no leaked file descriptors, its memory ends less than 10% above its peak during an equal
warm-up, and every well-behaved client got every ACK in order. Exits 0 when every check
passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import struct
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WAIT = 15.0
# Hostile clients connect from these loopback addresses, which are not exempt from the
# per-address limits (127.0.0.1, used by the well-behaved clients, is).
HOSTILE_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
# The server's cache is bounded; the warm-up fills it, so that memory measured after the
# warm-up is the steady state and any growth after it is a leak.
HISTORY_LIMIT = 500
# Clients that vanish are held this long for /resume; short, so that the warm-up reaches
# the steady number of held sessions (a rate times this grace) within seconds.
RESUME_GRACE = 2


@dataclass
class Tally:
    """What happened during the soak, for the report."""

    acks: int = 0
    sessions: int = 0
    hostile: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


class Server:
    """The server process under test and what /proc says about it."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    async def start(cls) -> Server:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ackchat", "serve", "--port", str(port),
            "--max-clients", "200", "--line-timeout", "1", "--max-output-bytes", "262144",
            "--rate-limit", "5000", "--rate-burst", "5000", "--rate-strikes", "20",
            "--max-per-address", "8", "--connect-rate", "50", "--connect-burst", "20",
            "--limit-exempt", "127.0.0.1/32", "--shutdown-timeout", "2", "--log-level", "warning",
            "--history-limit", str(HISTORY_LIMIT), "--resume-grace", str(RESUME_GRACE),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        server = cls(process, port)
        await server.wait_until_listening()
        return server

    async def wait_until_listening(self) -> None:
        """Connect until the server answers (bounded), then leave."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            try:
                reader, writer = await open_client(self.port)
            except ConnectionRefusedError:
                if asyncio.get_running_loop().time() > deadline or self.process.returncode:
                    raise
                await asyncio.sleep(0.05)
                continue
            await read_greeting(reader)
            writer.write(b"exit\n")
            await asyncio.wait_for(reader.read(), WAIT)
            writer.close()
            return

    def rss(self) -> int:
        for text in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if text.startswith("VmRSS:"):
                return int(text.split()[1]) * 1024
        raise RuntimeError("no VmRSS for the server")

    def open_files(self) -> int:
        """File descriptors the server process holds, of every kind."""
        return len(list(Path(f"/proc/{self.process.pid}/fd").iterdir()))

    def client_sockets(self) -> int:
        """TCP connections (not listening sockets) the server process holds open."""
        inodes = set()
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except FileNotFoundError:  # closed since the listing: not open any more
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for text in Path(table).read_text().splitlines()[1:]:
                columns = text.split()
                count += columns[3] != "0A" and columns[9] in inodes
        return count


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def open_client(
    port: int, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0), limit=2**22), WAIT
    )


async def read_greeting(reader: asyncio.StreamReader) -> str | None:
    """The name from the greeting block, or None if the server turned us away."""
    first = (await asyncio.wait_for(reader.readline(), WAIT)).decode()
    match = re.fullmatch(r"Welcome! You are (\S+)\.\n", first)
    if match is None:
        return None
    while (await asyncio.wait_for(reader.readline(), WAIT)) != b".\n":
        pass
    return match.group(1)


async def well_behaved(number: int, port: int, deadline: float, tally: Tally) -> None:
    """Sessions of numbered messages, each ACK checked in order, some pipelined."""
    loop = asyncio.get_running_loop()
    rng = random.Random(number)
    while loop.time() < deadline:
        reader, writer = await open_client(port)
        if await read_greeting(reader) is None:
            tally.failures.append(f"well-behaved client {number} was turned away")
            writer.close()
            return
        tally.sessions += 1
        for batch in range(rng.randint(5, 40)):
            lines = [
                f"w{number}-{batch}-{n} {'x' * rng.randint(0, 200)}"
                for n in range(rng.randint(1, 8))
            ]
            writer.write("".join(f"{text}\n" for text in lines).encode())
            for text in lines:
                reply = (await asyncio.wait_for(reader.readline(), WAIT)).decode()
                if reply != f"{text} ACK\n":
                    tally.failures.append(f"client {number} expected {text!r} ACK, got {reply!r}")
                    writer.close()
                    return
                tally.acks += 1
            await asyncio.sleep(rng.uniform(0, 0.05))
        writer.write(b"exit\n")
        goodbye = await asyncio.wait_for(reader.readline(), WAIT)
        if not goodbye.startswith(b"Goodbye, "):
            tally.failures.append(f"client {number} got {goodbye!r} instead of its goodbye")
        writer.close()


async def hostile(kind: str, port: int, deadline: float, tally: Tally) -> None:
    """Repeat one kind of bad behaviour until the deadline."""
    loop = asyncio.get_running_loop()
    rng = random.Random(kind)
    while loop.time() < deadline:
        host = rng.choice(HOSTILE_HOSTS)
        try:
            await ATTACKS[kind](port, host, rng)
            tally.hostile[kind] += 1
        except (OSError, EOFError, TimeoutError):
            tally.hostile[f"{kind} (cut off)"] += 1
        await asyncio.sleep(0.01)


async def slow_sender(port: int, host: str, rng: random.Random) -> None:
    reader, writer = await open_client(port, host)
    try:
        for _ in range(30):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)
            if reader.at_eof():
                break
        await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


async def never_reads(port: int, host: str, rng: random.Random) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((host, 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), WAIT)
        for _ in range(2000):
            await asyncio.wait_for(loop.sock_sendall(sock, b"help\n" * 200), WAIT)
    finally:
        sock.close()


async def junk(port: int, host: str, rng: random.Random) -> None:
    reader, writer = await open_client(port, host)
    try:
        writer.write(
            rng.randbytes(rng.randint(1, 300_000)) + b"\n\xff\xfe\n" + b"y" * 70_000 + b"\n"
        )
        writer.write(b"exit\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


async def reset(port: int, host: str, rng: random.Random) -> None:
    _, writer = await open_client(port, host)
    writer.write(b"status all\n" + b"help\n" * rng.randint(0, 500))
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def storm(port: int, host: str, rng: random.Random) -> None:
    async def one() -> None:
        reader, writer = await open_client(port, host)
        try:
            await asyncio.wait_for(reader.readline(), WAIT)
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(30)), return_exceptions=True)


async def leaves_mid_reply(port: int, host: str, rng: random.Random) -> None:
    reader, writer = await open_client(port, host)
    writer.write(b"status all\n")
    await writer.drain()
    await asyncio.wait_for(reader.readline(), WAIT)
    writer.close()


ATTACKS = {
    "slow sender": slow_sender,
    "never reads": never_reads,
    "junk": junk,
    "reset": reset,
    "storm": storm,
    "leaves mid-reply": leaves_mid_reply,
}


async def status_connected(port: int) -> tuple[int, str]:
    """Connect, read the connected count from ``status``, and leave."""
    reader, writer = await open_client(port)
    await read_greeting(reader)
    writer.write(b"status\n")
    header = (await asyncio.wait_for(reader.readline(), WAIT)).decode()
    while (await asyncio.wait_for(reader.readline(), WAIT)) != b".\n":
        pass
    writer.write(b"exit\n")
    await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    await writer.wait_closed()
    match = re.match(r"status: (\d+) of", header)
    assert match is not None, header
    return int(match.group(1)), header.strip()


async def mixed_load(port: int, seconds: float, well_behaved_clients: int, tally: Tally) -> None:
    """Well-behaved and hostile clients together for ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    await asyncio.gather(
        *(well_behaved(n, port, deadline, tally) for n in range(well_behaved_clients)),
        *(hostile(kind, port, deadline, tally) for kind in ATTACKS),
    )


async def without_clients(server: Server) -> None:
    """Poll (bounded) until the server holds no client connection."""
    deadline = asyncio.get_running_loop().time() + WAIT
    # /proc offers nothing to wait on, so this polls, with a bound.
    while server.client_sockets() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def soak(duration: float, well_behaved_clients: int) -> int:
    server = await Server.start()
    tally = Tally()
    try:
        await without_clients(server)
        idle_files = server.open_files()
        # The same load for a while first, so that the baseline includes a full cache,
        # the steady number of held sessions and the allocator's high-water mark: the
        # highest RSS seen then. RSS wanders by a few MB with what the junk clients send,
        # so ending above that peak, not above one sample, is what a leak looks like.
        warm_up = asyncio.ensure_future(
            mixed_load(server.port, max(duration / 4, 5.0), well_behaved_clients, Tally())
        )
        baseline_rss = server.rss()
        while not warm_up.done():
            baseline_rss = max(baseline_rss, server.rss())
            await asyncio.wait([warm_up], timeout=0.25)
        await warm_up
        await without_clients(server)
        baseline_rss = max(baseline_rss, server.rss())
        await mixed_load(server.port, duration, well_behaved_clients, tally)
        # Let the server reap what the hostile clients left behind, then ask it.
        await without_clients(server)
        connected, header = await status_connected(server.port)
        await without_clients(server)
        files, sockets, rss = server.open_files(), server.client_sockets(), server.rss()
    finally:
        server.process.terminate()
        await asyncio.wait_for(server.process.wait(), WAIT)
    growth = (rss - baseline_rss) / baseline_rss
    checks = {
        "status counted only the checking client as connected": connected == 1,
        "no client connection left open in the server": sockets == 0,
        "no leaked file descriptors in the server": files == idle_files,
        "server memory ended less than 10% above its warm-up peak": growth < 0.10,
        "every well-behaved client got every ACK in order": not tally.failures,
        "the server exited 0 on SIGTERM": server.process.returncode == 0,
    }
    print(f"soak: {duration:g} s, {well_behaved_clients} well-behaved clients")
    print(f"  well-behaved: {tally.sessions} sessions, {tally.acks} ACKs checked in order")
    for kind, count in sorted(tally.hostile.items()):
        print(f"  hostile: {kind}: {count}")
    print(f"  last status header: {header}")
    print(f"  server file descriptors: {idle_files} idle before, {files} after")
    before, after = baseline_rss / 1e6, rss / 1e6
    print(f"  server RSS: {before:.1f} MB at its warm-up peak, {after:.1f} MB after", end="")
    print(f" ({growth:+.1%})")
    for failure in tally.failures[:10]:
        print(f"  failure: {failure}")
    for description, passed in checks.items():
        print(f"  {'PASS' if passed else 'FAIL'}: {description}")
    return 0 if all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of mixed load (default 60)"
    )
    parser.add_argument("--clients", type=int, default=20, help="well-behaved clients (default 20)")
    arguments = parser.parse_args()
    if not 0 < arguments.duration <= 3600:
        parser.error("--duration must be between 0 and 3600 seconds")
    return asyncio.run(soak(arguments.duration, arguments.clients))


if __name__ == "__main__":
    raise SystemExit(main())
