"""What the figures were measured on: processor, versions, and the commit measured."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version

from comparison.worktree import git


def processor() -> str:
    """The processor's model name from /proc/cpuinfo, or ``unknown``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def package_version(package: str) -> str:
    """An installed package's version, or ``not installed``."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def redis_version() -> str:
    """redis-server's version as it reports it, or ``?``."""
    output = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout
    return output.split("v=")[1].split()[0] if "v=" in output else "?"


def describe() -> dict[str, str]:
    """The machine, the versions that matter, and the ackchat commit measured."""
    described = git("describe", "--always", "--dirty")
    description = {
        "nproc": str(os.cpu_count()),
        "cpu": processor(),
        "python": platform.python_version(),
        "uvloop": package_version("uvloop"),
        "kernel": platform.release(),
        "ackchat commit": described.stdout.strip() or "not a git checkout",
    }
    if shutil.which("redis-server"):
        description["redis-server"] = redis_version()
    return description
