"""The earlier ackchat's source: a commit checked out with ``git worktree``, then removed.

The worktree lives in a temporary directory and is removed on the way out, whatever
happens in between, so a run leaves no checkout behind.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from comparison import ROOT, ComparisonError


def git(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run git in the project's root and return what it did (it may have failed)."""
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=False
        )
    except OSError as error:
        raise ComparisonError(f"git cannot be run: {error.strerror}.") from None


def said(completed: subprocess.CompletedProcess[str]) -> str:
    """The last line git wrote to stderr, without a final full stop."""
    lines = completed.stderr.strip().splitlines()
    return lines[-1].strip().rstrip(".") if lines else f"exit code {completed.returncode}"


def resolve(revision: str) -> str:
    """The short commit id that ``revision`` names in this repository."""
    if git("rev-parse", "--git-dir").returncode != 0:
        raise ComparisonError(
            f"--against {revision} needs a git checkout of ackchat; use --against none here."
        )
    completed = git("rev-parse", "--short", "--verify", "--quiet", f"{revision}^{{commit}}")
    if completed.returncode != 0:
        raise ComparisonError(f"--against {revision}: there is no such commit in this repository.")
    return completed.stdout.strip()


@contextmanager
def earlier_checkout(revision: str) -> Iterator[tuple[Path, str]]:
    """Check ``revision`` out into a temporary worktree; yields its path and short commit."""
    commit = resolve(revision)
    with tempfile.TemporaryDirectory(prefix="ackchat-earlier-") as directory:
        tree = Path(directory) / "tree"
        added = git("worktree", "add", "--detach", "--quiet", str(tree), commit)
        if added.returncode != 0:
            raise ComparisonError(f"{commit} cannot be checked out: {said(added)}.")
        try:
            yield tree, commit
        finally:
            git("worktree", "remove", "--force", str(tree))
