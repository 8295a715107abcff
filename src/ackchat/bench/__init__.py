"""``ackchat bench``: a load generator for ackchat and other line servers.

The command line lives in :mod:`ackchat.bench.options` (cheap to import, for ``ackchat
--help``) and runs in :mod:`ackchat.bench.cli`. The figures it reports (replies/s, latency
percentiles, its own CPU) come from :mod:`ackchat.bench.stats`, which is pure; the I/O
lives in the client, scenario and runner modules.
"""
