"""The layers the architecture promises, checked by reading the imports with ``ast``.

The pure core (protocol, chat, the backend interface and memory backend, the Redis
backend's keys, scripts, encodings, local delivery and liveness, the session, the
client's reply tracker, completion, display and backoff) does no I/O and reads no clock
of its own, so it is tested without sockets or time; ``protocol/`` is the bottom layer
and imports nothing else of ackchat. The terminal commands that need no load
generator do not import it, and none but ``serve --http`` imports the HTTP side (aiohttp,
prometheus-client): ``ackchat admin`` speaks HTTP with the standard library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "ackchat"
PURE = [
    *sorted((PACKAGE / "protocol").glob("*.py")),
    *sorted((PACKAGE / "chat").glob("*.py")),
    PACKAGE / "backend" / "__init__.py",
    PACKAGE / "backend" / "interface.py",
    PACKAGE / "backend" / "memory.py",
    PACKAGE / "backend" / "pending.py",
    PACKAGE / "backend" / "redis" / "keys.py",
    PACKAGE / "backend" / "redis" / "scripts.py",
    PACKAGE / "backend" / "redis" / "codec.py",
    PACKAGE / "backend" / "redis" / "local.py",
    PACKAGE / "backend" / "redis" / "liveness.py",
    PACKAGE / "registry.py",
    PACKAGE / "records.py",
    PACKAGE / "admission.py",
    PACKAGE / "ratelimit.py",
    PACKAGE / "server" / "session.py",
    PACKAGE / "server" / "reload.py",
    PACKAGE / "server" / "stats.py",
    PACKAGE / "http" / "views.py",
    PACKAGE / "admin" / "render.py",
    PACKAGE / "client" / "core.py",
    PACKAGE / "client" / "directory.py",
    PACKAGE / "client" / "display.py",
    PACKAGE / "client" / "reconnect.py",
]
IMPURE = {"asyncio", "socket", "ssl", "selectors", "time"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, by its full dotted name."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", PURE, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_the_pure_core_does_no_io_and_reads_no_clock(path: Path) -> None:
    impure = {module for module in imported_modules(path) if module.split(".")[0] in IMPURE}
    assert not impure, f"{path.name} imports {sorted(impure)}"


@pytest.mark.parametrize(
    "path",
    sorted((PACKAGE / "protocol").glob("*.py")),
    ids=lambda path: path.name,
)
def test_the_protocol_is_the_bottom_layer(path: Path) -> None:
    ours = {module for module in imported_modules(path) if module.split(".")[0] == "ackchat"}
    assert all(module.startswith("ackchat.protocol") for module in ours), sorted(ours)


def test_the_check_reads_real_imports() -> None:
    assert {"asyncio", "ackchat.server.session"} <= imported_modules(
        PACKAGE / "server" / "connection.py"
    )


@pytest.mark.parametrize("argv", [["--help"], ["connect", "--help"], ["serve", "--help"]])
def test_commands_without_load_do_not_import_the_load_generator(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from ackchat.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [name for name in sys.modules if name.startswith('ackchat.bench.')\n"
        "          and name != 'ackchat.bench.options']\n"
        "print(','.join(sorted(loaded)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr.strip().splitlines()[-1:] in ([], [""]), done.stderr


HTTP_SIDE = ("aiohttp", "prometheus_client", "ackchat.http")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["connect", "--help"],
        ["serve", "--help"],
        ["bench", "--help"],
        ["admin", "--help"],
        ["admin", "status", "--url", "http://127.0.0.1:9"],
    ],
)
def test_commands_but_serve_with_http_do_not_import_the_http_side(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from ackchat.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"loaded = [name for name in sys.modules if name.startswith({HTTP_SIDE!r})]\n"
        "print('loaded:' + ','.join(sorted(loaded)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == "loaded:", done.stdout


def test_the_http_probe_sees_the_http_side_when_it_is_imported() -> None:
    probe = (
        "import sys\n"
        "import ackchat.http.app\n"
        f"print(sorted(name for name in sys.modules if name.startswith({HTTP_SIDE!r}))[:1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['ackchat.http']"
