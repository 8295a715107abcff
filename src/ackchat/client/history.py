"""The prompt's input history, kept between runs in a private file that never holds a secret.

As redis-cli keeps ``~/.rediscli_history``, the interactive client appends each line
typed at its prompt to ``$XDG_STATE_HOME/ackchat/history`` (``~/.local/state/...`` when
the variable is not set), or to ``--history-file``, and offers them again to the next
run's Up arrow and Ctrl-R. Its directory is created private (0700) and the file readable
by its owner only (0600). Lines that carry a secret are never written: ``auth
<password>``, ``/auth ...`` (no command, but whoever types it is giving a password) and
``/resume <token>`` (a token takes a held session over). The password prompt has no
history at all. A file that cannot be used costs one warning line, and the history then
lasts for the run only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from ackchat.settings.client import DEFAULT_HISTORY

# The first words (in any case) of the lines that are not written to the file.
SECRET_WORDS = frozenset({"auth", "/auth", "/resume"})
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600

# Tells the user, in one line, that the history file cannot be used.
Warn = Callable[[str], None]


def default_history_path(environ: Mapping[str, str], home: Path) -> Path:
    """The history file when none is given: under ``$XDG_STATE_HOME``, else ``~/.local/state``.

    The XDG base directory specification ignores a variable that is empty or relative.
    """
    state = Path(environ.get("XDG_STATE_HOME", ""))
    base = state if state.is_absolute() else home / ".local" / "state"
    return base / DEFAULT_HISTORY


def holds_secret(entry: str) -> bool:
    """Whether a history entry (a pasted one may hold several lines) carries a secret."""
    for line in entry.splitlines():
        words = line.split(maxsplit=1)
        if words and words[0].casefold() in SECRET_WORDS:
            return True
    return False


def cannot_keep(path: Path, error: OSError) -> str:
    """The warning for a history file that cannot be read or written."""
    reason = error.strerror or str(error)
    return f"cannot keep the input history in {path} ({reason}); it lasts for this run only."


class PrivateFileHistory(FileHistory):
    """A :class:`FileHistory` that leaves secrets out, and stops writing when it cannot.

    Lines with a secret stay in this run's memory, as on the screen, but never reach the
    file. The first write that fails is reported through ``warn``; later lines are kept
    in memory only, so a full disk or a removed directory does not end the client.
    """

    def __init__(self, path: Path, warn: Warn) -> None:
        super().__init__(path)
        self._path = path
        self._warn = warn
        self._writable = True

    def store_string(self, string: str) -> None:
        """Append ``string`` to the file, unless it holds a secret or the file failed before."""
        if holds_secret(string) or not self._writable:
            return
        try:
            super().store_string(string)
        except OSError as error:
            self._writable = False
            self._warn(cannot_keep(self._path, error))


def open_history(setting: str | None, warn: Warn) -> History:
    """The prompt's history for the ``history_file`` setting ("" default, None no file).

    The file is made ready here (a missing directory is created 0700, a missing file
    0600) and opened for reading and appending once, so that a file that cannot be used is
    found before the prompt shows, and reported through ``warn`` once.
    """
    if setting is None:
        return InMemoryHistory()
    path = Path(setting).expanduser() if setting else default_history_path(os.environ, Path.home())
    try:
        try:
            _make_ready(path)
        except FileNotFoundError:
            path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
            _make_ready(path)
    except OSError as error:
        warn(cannot_keep(path, error))
        return InMemoryHistory()
    return PrivateFileHistory(path, warn)


def _make_ready(path: Path) -> None:
    """Create the file (0600) if it is missing, and check that it can be read and appended to."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE))
