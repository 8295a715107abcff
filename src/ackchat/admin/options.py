"""``ackchat admin``'s help text, actions and options, without the HTTP client.

``ackchat --help`` builds this parser too, so this module imports nothing else of the
admin command; :mod:`ackchat.admin.cli` runs it.
"""

from __future__ import annotations

import argparse

from ackchat.settings import AdminSettings, add_arguments

# Each action with the words it takes after it.
ACTIONS = {"status": (), "clients": (), "kick": ("NAME",), "set": ("KEY", "VALUE"), "drain": ()}

DESCRIPTION = """\
Watch and change a running server through its admin API (ackchat serve --http PORT).

actions:
  status           what 'status' shows: totals, clients with reasons, limits, rooms
                   (--all: the whole cache)
  clients          the connected clients: address, connected since, idle time, lines
                   in and out, rooms
  kick NAME        disconnect a client (recorded as 'kicked'); in a cluster, on
                   whichever node it is connected
  set KEY VALUE    change a live setting: max_clients, idle_timeout, rate_limit,
                   rate_burst, rate_strikes, history_limit, status_recent, room_history,
                   direct_history (lowering max_clients disconnects nobody)
  drain            drain the server, as SIGUSR1 does; it exits once its clients left

The token (needed for kick, set and drain, and for every call with the server's
--admin-read-token) comes from --token-file (the file the server's log names when it
made one) or ACKCHAT_ADMIN_TOKEN.
"""

EXIT_CODES = """\
exit codes:
  0    done
  1    any other failure (the server answered with an error of its own, or not as the
       admin API does)
  2    bad options (an unknown action, a missing NAME, an unreadable token file)
  3    the admin API cannot be reached (refused, unknown host, no answer in time)
  5    drain: the server is draining or stopping already
  6    the token is missing or wrong
  7    set: the server refused the setting or its value (the reason names it)
  8    kick: no client of that name is connected
  130  interrupted (Ctrl-C)
Each failure is explained in one line on stderr.
"""


def add_admin_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the action, its words and the options of ``ackchat admin`` to ``parser``."""
    parser.description = DESCRIPTION
    parser.epilog = EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", choices=list(ACTIONS), metavar="ACTION", help="what to do")
    parser.add_argument("words", nargs="*", metavar="ARGUMENT", help="NAME, or KEY VALUE")
    parser.add_argument(
        "--all", action="store_true", help="status: every client in the cache, not only recent"
    )
    add_arguments(parser, AdminSettings)
