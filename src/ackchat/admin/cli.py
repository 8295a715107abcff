"""``ackchat admin``: one call to the admin API, its answer printed as text or JSON.

The exit codes are listed in :mod:`ackchat.admin.options` (and ``ackchat admin --help``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from ackchat.admin.api import AdminApi, AdminError
from ackchat.admin.options import ACTIONS
from ackchat.admin.render import (
    changed_text,
    clients_text,
    drain_text,
    kicked_text,
    status_text,
)
from ackchat.client.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ackchat.settings import AdminSettings, config_path, given_flags, resolve


def set_value(text: str) -> object:
    """A VALUE from the command line as JSON would have it: ``10`` a number, ``2.5`` too,
    anything else a string (which the server then refuses, naming the setting)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float) and not isinstance(value, bool) else text


def run_admin(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run ``ackchat admin``; returns one of the exit codes in admin/options.py."""
    action: str = arguments.action
    words: list[str] = arguments.words
    wanted = ACTIONS[action]
    if len(words) != len(wanted):
        given = " ".join(wanted) if wanted else "nothing more"
        print(f"ackchat admin: {action} takes {given}", file=sys.stderr)
        return EXIT_USAGE
    settings = resolve(
        AdminSettings, given_flags(arguments, AdminSettings), env, config_path(arguments, env)
    )
    api = AdminApi(settings.url, settings.read_token(), settings.timeout)
    try:
        answer, lines = _call(api, action, words, arguments.all)
    except AdminError as error:
        print(f"ackchat admin: {_sentence(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("ackchat admin: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if settings.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print("\n".join(lines))
    return EXIT_OK


def _call(api: AdminApi, action: str, words: list[str], show_all: bool) -> tuple[Any, list[str]]:
    """Do ``action``: the API's answer, and the text it reads as."""
    if action == "status":
        answer = api.status(show_all)
        return answer, status_text(answer)
    if action == "clients":
        answer = api.clients()
        return answer, clients_text(answer)
    if action == "kick":
        answer = api.kick(words[0])
        return answer, kicked_text(answer)
    if action == "set":
        answer = api.set(words[0], set_value(words[1]))
        return answer, changed_text(answer, words[0])
    answer = api.drain()
    return answer, drain_text(answer)


def _sentence(text: str) -> str:
    """``text`` ending as a sentence does."""
    return text if text.endswith((".", "?", "!")) else f"{text}."
