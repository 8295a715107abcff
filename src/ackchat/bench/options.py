"""``ackchat bench``'s help text and options, without the load generator.

``ackchat --help`` and ``ackchat connect`` build this parser too, so this module imports
nothing of the load generator; :mod:`ackchat.bench.cli` runs it.
"""

from __future__ import annotations

import argparse

from ackchat.settings import BenchSettings, add_arguments

DESCRIPTION = """\
Load an ackchat server (or any line echo server) and report replies/s, round-trip
latency (p50, p90, p99, max) and this generator's own CPU use.

scenarios:
  echo     N connections, K requests in flight each; every reply is checked
  connect  N clients in parallel repeating connect, greeting, exit, close; cycles/s
  idle     hold N idle clients; with --server-pid, server memory per connection
  status   'status all' time over a cache filled with --cache-fill clients, then the
           echo latency of N clients while --status-clients loop on 'status all'
  fanout   one sender and N receivers (default 1,000) in --room; the sender keeps K
           '/say' messages in flight (at most --rate a second); each receiver checks it
           gets every message in order and times it from the send (time.monotonic_ns);
           deliveries/s = messages x receivers received per second; the server needs
           --max-clients above N + 1
           --pubsub redis: the same through redis-server's publish/subscribe: the N
           receivers SUBSCRIBE to the channel --room, the sender keeps K PUBLISH in
           flight, each of which must reach N subscribers; redis-server needs
           --maxclients above N + 1 (its default is 10,000)

Against redis-server: --line-protocol --request PING --expect +PONG (--quit QUIT for
the connect scenario); --scenario fanout --pubsub redis for its publish/subscribe.
"""

EXIT_CODES = """\
exit codes:
  0    every reply was right
  1    wrong or missing replies, lost fanout messages, or the server did not answer as
       the scenario expects (another protocol, closed connections)
  2    bad options, or options that cannot make a run together
  3    the server cannot be reached (refused, unknown host, no answer or greeting in time)
  4    the server is full: it cannot hold the connections the run needs
  5    the server closed connections before greeting them (shutting down, unavailable)
  6    the server asks for a password
  130  interrupted (Ctrl-C)
Each failure is explained in one line on stderr.
"""


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ackchat bench`` to ``parser`` (flag, env, ``[bench]`` table)."""
    parser.description = DESCRIPTION
    parser.epilog = EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_arguments(parser, BenchSettings)
