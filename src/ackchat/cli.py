"""The ``ackchat`` command: ``serve`` runs a server, ``connect`` opens a client, ``bench``
loads a server, ``admin`` watches and changes a running one."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from ackchat import __version__
from ackchat.admin.options import add_admin_arguments
from ackchat.bench.options import DESCRIPTION as BENCH_DESCRIPTION
from ackchat.bench.options import add_bench_arguments
from ackchat.client.errors import EXIT_INTERRUPTED, EXIT_USAGE
from ackchat.settings import (
    CONFIG_ENV,
    ClientSettings,
    Loaded,
    ServerSettings,
    SettingsError,
    add_arguments,
    config_path,
    given_flags,
    load,
    resolve,
)

DESCRIPTION = f"""\
ackchat: a small TCP chat server and terminal client.

Every option is also read from an ACKCHAT_<OPTION> environment variable and from a
TOML config file (--config or {CONFIG_ENV}), in that order after the flag itself.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``ackchat`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="ackchat",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ackchat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run a server",
        description="Run an ackchat server until SIGINT or SIGTERM; SIGHUP reloads the"
        " config file's live settings (max_clients, idle_timeout, rate limits, history"
        " sizes); SIGUSR1 drains it (no new clients, the connected ones told to reconnect)"
        " and it exits once they have left or --drain-timeout has passed. --http PORT adds"
        " the admin API and /metrics (see 'ackchat admin --help').",
    )
    add_arguments(serve, ServerSettings)
    connect = commands.add_parser(
        "connect",
        help="connect to a server",
        description="Talk to an ackchat server: interactively on a terminal, or line by line"
        " from a pipe (each line waits for its reply; the end of input sends exit).",
    )
    add_arguments(connect, ClientSettings)
    bench = commands.add_parser(
        "bench",
        help="measure a server under load",
        description=BENCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_arguments(bench)
    admin = commands.add_parser("admin", help="watch and change a running server over HTTP")
    add_admin_arguments(admin)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the ``ackchat`` command; returns the process exit code."""
    environment = os.environ if env is None else env
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "serve":
            return _serve(arguments, environment)
        if arguments.command == "bench":
            from ackchat.bench.cli import run_bench

            return run_bench(arguments, environment)
        if arguments.command == "admin":
            from ackchat.admin.cli import run_admin

            return run_admin(arguments, environment)
        return _connect(arguments, environment)
    except SettingsError as error:
        print(f"ackchat: {error}", file=sys.stderr)
        return EXIT_USAGE


def _serve(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ackchat.server.runner import run_server

    flags = given_flags(arguments, ServerSettings)
    path = config_path(arguments, env)

    def reload() -> Loaded[ServerSettings]:
        return load(ServerSettings, flags, env, path)

    return run_server(reload().settings, reload)


def _connect(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ackchat.client import run_client

    settings = resolve(
        ClientSettings, given_flags(arguments, ClientSettings), env, config_path(arguments, env)
    )
    try:
        return asyncio.run(run_client(settings))
    except KeyboardInterrupt:
        # asyncio.run has cancelled the client, which closed its connection on the way out.
        return EXIT_INTERRUPTED
