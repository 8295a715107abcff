"""The interactive client's input history: where its file is, what never goes in it, and
how a file that cannot be used is survived (files under pytest's tmp_path, no terminal)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from prompt_toolkit.history import History, InMemoryHistory

from ackchat.client.history import (
    PrivateFileHistory,
    default_history_path,
    holds_secret,
    open_history,
)

HOME = Path("/home/someone")
SECRET = "s3cret-horse"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def loaded(history: History) -> list[str]:
    """The entries a prompt would offer, most recent first."""
    return [entry async for entry in history.load()]


@pytest.mark.parametrize(
    ("environ", "path"),
    [
        ({"XDG_STATE_HOME": "/state"}, Path("/state/ackchat/history")),
        ({}, HOME / ".local/state/ackchat/history"),
        ({"XDG_STATE_HOME": ""}, HOME / ".local/state/ackchat/history"),
        # The XDG specification: a relative path is invalid and ignored.
        ({"XDG_STATE_HOME": "state"}, HOME / ".local/state/ackchat/history"),
    ],
)
def test_the_default_file_is_under_the_xdg_state_directory(
    environ: dict[str, str], path: Path
) -> None:
    assert default_history_path(environ, HOME) == path


@pytest.mark.parametrize(
    "entry",
    [
        f"auth {SECRET}",
        f"  AUTH {SECRET}",
        f"/auth {SECRET}",
        "/Resume 9gD5evkEHYmkTy2lQa-7Zlqa",
        f"hello\nauth {SECRET}",  # A paste of several lines.
    ],
)
def test_lines_that_carry_a_secret_are_recognised(entry: str) -> None:
    assert holds_secret(entry)


@pytest.mark.parametrize("entry", ["", "hello", "authority matters", "/nick auth", "/msg bob auth"])
def test_other_lines_are_kept(entry: str) -> None:
    assert not holds_secret(entry)


async def test_secrets_never_reach_the_file_and_the_rest_comes_back_next_run(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "history"
    warnings: list[str] = []
    first_run = open_history(str(path), warnings.append)
    assert isinstance(first_run, PrivateFileHistory)
    for entry in ["hello", f"auth {SECRET}", "/join dev", f"/AUTH {SECRET}", "two\nlines"]:
        first_run.append_string(entry)
    assert SECRET.encode() not in path.read_bytes()
    next_run = open_history(str(path), warnings.append)
    assert await loaded(next_run) == ["two\nlines", "/join dev", "hello"]
    assert (mode(path.parent), mode(path)) == (0o700, 0o600)
    assert warnings == []


async def test_the_default_file_is_made_private_under_xdg_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    history = open_history("", lambda text: pytest.fail(text))
    history.append_string("hi")
    path = tmp_path / "ackchat" / "history"
    assert (mode(path.parent), mode(path)) == (0o700, 0o600)
    assert await loaded(open_history("", lambda text: pytest.fail(text))) == ["hi"]


def test_no_history_file_keeps_nothing_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    history = open_history(None, lambda text: pytest.fail(text))
    history.append_string("hi")
    assert type(history) is InMemoryHistory
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_cannot_be_made_costs_one_warning(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    path = not_a_directory / "history"
    warnings: list[str] = []
    history = open_history(str(path), warnings.append)
    history.append_string("still works")
    assert type(history) is InMemoryHistory
    assert history.get_strings() == ["still works"]
    assert warnings == [
        f"cannot keep the input history in {path} (Not a directory); it lasts for this run only."
    ]


def test_a_file_that_cannot_be_written_later_costs_one_warning_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history"
    warnings: list[str] = []
    history = open_history(str(path), warnings.append)
    path.unlink()
    path.mkdir()  # Appending to it now fails, even for root.
    for entry in ["one", "two"]:
        history.append_string(entry)
    assert history.get_strings() == ["one", "two"]
    assert warnings == [
        f"cannot keep the input history in {path} (Is a directory); it lasts for this run only."
    ]
