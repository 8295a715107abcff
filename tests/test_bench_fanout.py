"""The fanout scenario: its pure line handling, and short runs against an in-process server."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from ackchat.bench.chatlines import (
    ChatEvent,
    SequenceCheck,
    end_text,
    message_text,
    parse_end,
    parse_event,
    parse_message,
)
from ackchat.bench.client import BenchError
from ackchat.bench.scenarios import run_scenario
from ackchat.bench.stats import Measurement, failed_checks, fanout_figures, summarize
from ackchat.records import DisconnectReason
from ackchat.server.assembly import ChatServer, memory_backend
from ackchat.settings import BenchSettings
from conftest import TEST_SETTINGS, ServerFactory, snapshot
from lineclient import eventually

EVENT = b"@15 2026-11-25T14:00:05+00:00 #dev Client01: 7 123456789"


def test_parse_event_splits_an_event_line() -> None:
    assert parse_event(EVENT) == ChatEvent(15, b"#dev", b"Client01", b"7 123456789")


def test_parse_event_keeps_colons_and_spaces_in_the_text() -> None:
    event = parse_event(b"@1 2026-11-25T14:00:05+00:00 all bob: a: b c")
    assert event is not None
    assert event.text == b"a: b c"


def test_parse_event_reads_presence_lines() -> None:
    event = parse_event(b"@3 2026-11-25T14:00:05+00:00 #dev *: alice joined")
    assert event == ChatEvent(3, b"#dev", b"*", b"alice joined")


@pytest.mark.parametrize(
    "line",
    [
        b"/say #dev 1 2 ACK",
        b"joined #dev: 3 members",
        b"@x 2026-11-25T14:00:05+00:00 #dev a: t",
        b"@1 2026-11-25T14:00:05+00:00 #dev a",
        b"@1 #dev a: t",
        b"",
    ],
)
def test_parse_event_rejects_other_lines(line: bytes) -> None:
    assert parse_event(line) is None


def test_message_text_round_trips() -> None:
    assert parse_message(message_text(42, 1_700_000_000_123)) == (42, 1_700_000_000_123)
    assert parse_end(end_text(42)) == 42


@pytest.mark.parametrize("text", [b"end 5", b"7", b"7 x", b"-1 5", b"a b", b""])
def test_parse_message_rejects_other_text(text: bytes) -> None:
    assert parse_message(text) is None


@pytest.mark.parametrize("text", [b"7 5", b"end", b"end x", b"ends 5"])
def test_parse_end_rejects_other_text(text: bytes) -> None:
    assert parse_end(text) is None


def check(numbers: list[int], total: int | None) -> SequenceCheck:
    sequence = SequenceCheck()
    for number in numbers:
        sequence.receive(number)
    if total is not None:
        sequence.finish(total)
    return sequence


def test_sequence_check_accepts_every_message_in_order() -> None:
    sequence = check([0, 1, 2, 3], 4)
    assert (sequence.in_order, sequence.lost, sequence.violations) == (4, 0, 0)
    assert sequence.finished


def test_sequence_check_counts_a_gap_as_lost() -> None:
    sequence = check([0, 3, 4], 5)
    assert (sequence.in_order, sequence.lost, sequence.violations) == (3, 2, 1)


def test_sequence_check_counts_repeats_and_late_messages() -> None:
    # 1 again, a gap before 3 (2 counted lost), then 2 late: three violations.
    sequence = check([0, 1, 1, 3, 2], 4)
    assert (sequence.in_order, sequence.lost, sequence.violations) == (3, 1, 3)


def test_sequence_check_counts_a_missing_tail_as_lost() -> None:
    sequence = check([0, 1], 5)
    assert (sequence.in_order, sequence.lost, sequence.violations) == (2, 3, 0)


def test_sequence_check_flags_more_messages_than_sent() -> None:
    sequence = check([0, 1, 2], 2)
    assert sequence.violations == 1


def test_sequence_check_without_the_end_is_unfinished() -> None:
    assert not check([0, 1], None).finished


def fanout_measurement(sent: int, receivers: int, in_order: int) -> Measurement:
    measurement = Measurement("fanout", connections=receivers, replies=in_order, seconds=2.0)
    measurement.extra.update(
        messages_sent=sent,
        messages_in_window=sent,
        deliveries_in_order=in_order,
        order_violations=0,
        receivers_unfinished=0,
    )
    return measurement


def test_fanout_figures_count_what_did_not_arrive() -> None:
    figures = fanout_figures(fanout_measurement(sent=100, receivers=10, in_order=995))
    assert figures["deliveries_expected"] == 1000
    assert figures["messages_lost"] == 5
    assert figures["messages_per_s"] == 50.0
    assert figures["messages_sent"] == 100


def test_failed_checks_name_losses() -> None:
    assert failed_checks(summarize(fanout_measurement(100, 10, 1000))) == []
    problems = failed_checks(summarize(fanout_measurement(100, 10, 990)))
    assert problems == ["messages lost: 10"]


# Each run is bounded by this; the request limit ends it much sooner.
SHORT = BenchSettings(scenario="fanout", connections=50, warmup=0.0, duration=10.0)


async def test_fanout_reaches_every_receiver_in_order(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=25)
    options = replace(SHORT, port=server.port, connections=20, pipeline=4, requests=200)
    measurement = await run_scenario(options)
    summary = summarize(measurement)
    assert measurement.errors == 0, measurement.error_samples
    assert summary["messages_sent"] == 200
    assert summary["deliveries_in_order"] == 200 * 20
    assert summary["messages_lost"] == 0
    assert summary["order_violations"] == 0
    assert summary["receivers_unfinished"] == 0
    assert measurement.latency.count == measurement.replies > 0


async def test_fanout_connections_say_exit_so_none_is_held_for_resume(
    start_server: ServerFactory,
) -> None:
    # A held client stays in the room: the next run would fan out to it as well.
    server = await start_server(max_clients=10)
    options = replace(SHORT, port=server.port, connections=5, requests=20)
    assert (await run_scenario(options)).errors == 0

    async def all_gone() -> bool:
        await asyncio.sleep(0)
        return snapshot(server).connected == 0

    await eventually(all_gone, "every fanout client left")
    reasons = {record.reason for record in snapshot(server).sessions}
    assert reasons == {DisconnectReason.EXIT}


async def test_fanout_at_a_bounded_rate(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=10)
    options = replace(SHORT, port=server.port, connections=5, rate=2000.0, requests=40)
    measurement = await run_scenario(options)
    summary = summarize(measurement)
    assert measurement.errors == 0, measurement.error_samples
    assert summary["deliveries_in_order"] == 40 * 5
    assert summary["messages_lost"] == 0


def test_fanout_share_gives_the_sender_to_the_first_worker() -> None:
    options = replace(SHORT, connections=6, requests=50, workers=2)
    first, second = options.share(0), options.share(1)
    assert (first.connections, first.sends, first.requests) == (3, True, 50)
    assert (second.connections, second.sends) == (3, False)


async def test_fanout_fails_when_the_server_is_full(start_server: ServerFactory) -> None:
    server = await start_server(max_clients=3)
    options = replace(SHORT, port=server.port, connections=4, requests=10)
    with pytest.raises(BenchError, match="full"):
        await run_scenario(options)


async def test_fanout_needs_an_ackchat_server() -> None:
    with pytest.raises(ValueError, match="ackchat server"):
        await run_scenario(replace(SHORT, line_protocol=True))


async def test_receivers_spread_over_the_receiver_ports_get_every_message() -> None:
    settings = replace(TEST_SETTINGS, max_clients=20)
    backend = memory_backend(settings)
    first, second = ChatServer(settings, backend), ChatServer(settings, backend)
    await first.start()
    await second.start()
    try:
        options = replace(
            SHORT,
            port=first.port,
            receiver_ports=(first.port, second.port),
            connections=6,
            pipeline=4,
            requests=40,
        )
        measurement = await run_scenario(options)
        # One backend behind two listeners, as a cluster's nodes: each server held half
        # of the receivers, and every receiver heard every message.
        assert measurement.errors == 0, measurement.error_samples
        assert fanout_figures(measurement)["messages_lost"] == 0
        assert summarize(measurement)["replies"] == 6 * 40
        assert [first.counters.admitted, second.counters.admitted] == [4, 3]
    finally:
        await first.shutdown()
        await second.shutdown()
