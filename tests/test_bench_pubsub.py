"""Fanout through redis-server (``--pubsub redis``): the RESP reader, and runs against a real
redis-server on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ackchat.bench.chatlines import end_text, message_text
from ackchat.bench.client import BenchError
from ackchat.bench.resp import ChannelReader, bulk_prefix, command
from ackchat.bench.runner import BenchFailedError, run_bench_options
from ackchat.bench.scenarios import run_scenario, usage_problem
from ackchat.bench.stats import Measurement, summarize
from ackchat.cli import main
from ackchat.client.errors import EXIT_ERROR, EXIT_OK, EXIT_SERVER_FULL
from ackchat.settings import BenchSettings
from conftest import ServerFactory
from lineclient import bounded
from redisserver import RedisServer, redis_binary

CHANNEL = b"#bench"
CONFIRMATION = b"*3\r\n$9\r\nsubscribe\r\n$6\r\n#bench\r\n:1\r\n"


def push(payload: bytes, channel: bytes = CHANNEL) -> bytes:
    """The push redis-server sends a subscriber of ``channel`` for one message."""
    return bulk_prefix(b"message", channel) + b"$%d\r\n%s\r\n" % (len(payload), payload)


def read_all(reader: ChannelReader, chunks: list[bytes]) -> list[bytes]:
    return [payload for chunk in chunks for payload in reader.feed(chunk)]


def test_commands_use_the_array_form() -> None:
    assert command(b"SUBSCRIBE", CHANNEL) == b"*2\r\n$9\r\nSUBSCRIBE\r\n$6\r\n#bench\r\n"
    assert command(b"PUBLISH", b"c", b"a b\r\n") == (
        b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$5\r\na b\r\n\r\n"
    )


def test_the_push_format_is_redis_servers() -> None:
    assert push(b"7 123") == b"*3\r\n$7\r\nmessage\r\n$6\r\n#bench\r\n$5\r\n7 123\r\n"


def test_the_reader_takes_the_confirmation_then_the_pushes() -> None:
    reader = ChannelReader(CHANNEL)
    assert reader.feed(CONFIRMATION[:10]) == []
    assert (reader.subscriptions, reader.problem) == (None, None)
    payloads = reader.feed(CONFIRMATION[10:] + push(b"0 5") + push(b"1 6"))
    assert (payloads, reader.subscriptions, reader.problem) == ([b"0 5", b"1 6"], 1, None)


def test_a_push_split_anywhere_is_read_whole_once() -> None:
    stream = push(b"41 123456789") + push(b"end 42")
    for cut in range(1, len(stream)):
        reader = ChannelReader(CHANNEL)
        reader.feed(CONFIRMATION)
        payloads = read_all(reader, [stream[:cut], stream[cut:]])
        assert payloads == [b"41 123456789", b"end 42"], cut
        assert reader.problem is None


@given(
    payloads=st.lists(st.binary(max_size=40), max_size=30),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_a_stream_of_pushes_split_at_random_points_reads_the_same(
    payloads: list[bytes], cuts: list[int]
) -> None:
    # Payloads of any bytes (CR and LF too): pushes are framed by length, not by lines.
    stream = CONFIRMATION + b"".join(push(payload) for payload in payloads)
    points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    chunks = [stream[start:end] for start, end in itertools.pairwise(points)]
    reader = ChannelReader(CHANNEL)
    assert read_all(reader, chunks) == payloads
    assert (reader.subscriptions, reader.problem) == (1, None)


def test_an_error_reply_is_kept_whole() -> None:
    reader = ChannelReader(CHANNEL)
    assert reader.feed(b"-ERR max number") == []
    assert reader.problem is None
    reader.feed(b" of clients reached\r\n")
    assert reader.problem == b"-ERR max number of clients reached"


@pytest.mark.parametrize(
    "stream",
    [
        b"Welcome! You are Client01.\n",
        CONFIRMATION + b"*3\r\n$8\r\npmessage\r\n",
        CONFIRMATION + push(b"x", b"#other"),
        CONFIRMATION + b"*3\r\n$7\r\nmessage\r\n$6\r\n#bench\r\n$x\r\n",
        CONFIRMATION + b"*3\r\n$7\r\nmessage\r\n$6\r\n#bench\r\n$2\r\nabc\r\n",
    ],
)
def test_other_bytes_stop_the_reader(stream: bytes) -> None:
    reader = ChannelReader(CHANNEL)
    reader.feed(stream)
    assert reader.problem is not None
    assert reader.feed(push(b"0 1")) == []


def test_the_pushes_before_other_bytes_still_count() -> None:
    reader = ChannelReader(CHANNEL)
    assert reader.feed(CONFIRMATION + push(b"0 1") + b"+OK\r\n") == [b"0 1"]
    assert reader.problem == b"+OK\r\n"


def test_messages_are_padded_to_the_size() -> None:
    assert message_text(7, 123, 16) == b"7 00000000000123"
    assert message_text(7, 123_456_789_012_345, 16) == b"7 123456789012345"
    assert end_text(7) == b"end 7"


def test_only_fanout_measures_redis_pubsub() -> None:
    redis = BenchSettings(scenario="fanout", pubsub="redis")
    assert redis.redis_pubsub
    assert not redis.greeting
    assert usage_problem(replace(redis, line_protocol=True)) is None
    assert not replace(redis, scenario="echo").redis_pubsub
    problem = usage_problem(BenchSettings(scenario="fanout", line_protocol=True))
    assert problem is not None
    assert "--pubsub redis" in problem


def test_each_worker_knows_the_whole_runs_receivers() -> None:
    options = BenchSettings(scenario="fanout", pubsub="redis", connections=5, workers=2)
    assert options.all_connections == 5
    assert [options.share(n).all_connections for n in (0, 1)] == [5, 5]
    assert [options.share(n).connections for n in (0, 1)] == [3, 2]


# Each run is bounded by this; the request limit ends it much sooner.
SHORT = BenchSettings(
    scenario="fanout", pubsub="redis", connections=20, warmup=0.0, duration=10.0, requests=200
)


def assert_every_message_arrived(measurement: Measurement, sent: int, receivers: int) -> None:
    summary = summarize(measurement)
    assert measurement.errors == 0, measurement.error_samples
    assert summary["messages_sent"] == sent
    assert summary["deliveries_expected"] == summary["deliveries_in_order"] == sent * receivers
    assert summary["messages_lost"] == 0
    assert summary["order_violations"] == 0
    assert summary["receivers_unfinished"] == 0
    assert measurement.latency.count == measurement.replies > 0


async def test_fanout_through_redis_reaches_every_subscriber_in_order(
    redis_server: RedisServer,
) -> None:
    options = replace(SHORT, port=redis_server.port, pipeline=4, room="#all")
    assert_every_message_arrived(await run_scenario(options), 200, 20)


async def test_fanout_through_redis_at_a_bounded_rate(redis_server: RedisServer) -> None:
    options = replace(
        SHORT, port=redis_server.port, connections=5, rate=2000.0, requests=40, room="#rate"
    )
    assert_every_message_arrived(await run_scenario(options), 40, 5)


def test_fanout_through_redis_in_two_workers(redis_server: RedisServer) -> None:
    options = replace(SHORT, port=redis_server.port, pipeline=8, workers=2, room="#workers")
    assert_every_message_arrived(run_bench_options(options), 200, 20)


async def test_a_channel_with_another_subscriber_is_a_clear_error(
    redis_server: RedisServer,
) -> None:
    reader, writer = await bounded(asyncio.open_connection("127.0.0.1", redis_server.port))
    try:
        writer.write(command(b"SUBSCRIBE", b"#crowded"))
        confirmation = bulk_prefix(b"subscribe", b"#crowded") + b":1\r\n"
        assert await bounded(reader.readexactly(len(confirmation))) == confirmation
        options = replace(SHORT, port=redis_server.port, connections=5, room="#crowded")
        with pytest.raises(BenchError) as caught:
            await run_scenario(options)
    finally:
        writer.close()
    assert str(caught.value) == (
        "redis-server delivered a message to 6 subscribers of channel '#crowded', but this"
        " run has 5 receivers: another client is subscribed to it (choose another --room),"
        " or receivers were lost."
    )


async def test_an_ackchat_server_is_told_from_redis(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=10)
    with pytest.raises(BenchError, match="does not answer PING as redis-server does"):
        await run_scenario(replace(SHORT, port=server.port, connections=2))


def test_a_full_redis_server_says_what_to_change() -> None:
    server = RedisServer.start(redis_binary(), "--maxclients", "3")
    try:
        with pytest.raises(BenchFailedError) as caught:
            run_bench_options(replace(SHORT, port=server.port, connections=5))
    finally:
        server.stop()
    assert caught.value.exit_code == EXIT_SERVER_FULL
    assert str(caught.value).endswith("start redis-server with --maxclients 6 or more.")


ENVIRONMENT = {key: value for key, value in os.environ.items() if not key.startswith("ACKCHAT_")}
RUN = ("--scenario", "fanout", "--pubsub", "redis", "--warmup", "0", "--duration", "10")


def test_the_command_reports_redis_pubsub(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # --line-protocol, which redis-server's other scenarios need, is allowed too.
    arguments = ["--port", str(redis_server.port), "--room", "#cli", "--line-protocol"]
    arguments += ["--connections", "3", "--requests", "20", "--json"]
    assert main(["bench", *RUN, *arguments], ENVIRONMENT) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["pubsub"] == "redis"
    assert summary["deliveries_in_order"] == 20 * 3
    assert summary["messages_lost"] == 0


def test_the_command_says_in_one_sentence_that_a_channel_is_crowded(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=10) as other:
        other.sendall(command(b"SUBSCRIBE", b"#busy"))
        confirmation = bulk_prefix(b"subscribe", b"#busy") + b":1\r\n"
        with other.makefile("rb") as replies:
            assert replies.read(len(confirmation)) == confirmation
        arguments = ["--port", str(redis_server.port), "--room", "#busy", "--connections", "2"]
        assert main(["bench", *RUN, *arguments], ENVIRONMENT) == EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "ackchat bench: redis-server delivered a message to 3 subscribers of channel"
        " '#busy', but this run has 2 receivers: another client is subscribed to it"
        " (choose another --room), or receivers were lost.\n"
    )
