"""The in-memory registry: naming, slots, the bounded cache and disconnect reasons."""

from __future__ import annotations

import pytest

from ackchat.records import DisconnectReason, SessionRecord
from ackchat.registry import MemoryRegistry, client_name


def admit(
    registry: MemoryRegistry, address: str = "127.0.0.1:1", now: float = 0.0
) -> SessionRecord:
    record = registry.admit(address, now)
    assert record is not None
    return record


def test_names_count_up_with_two_digits_and_grow_past_99() -> None:
    assert [client_name(n) for n in (1, 2, 9, 10, 99, 100, 1234)] == [
        "Client01", "Client02", "Client09", "Client10", "Client99", "Client100", "Client1234",
    ]  # fmt: skip


def test_names_are_never_reused() -> None:
    registry = MemoryRegistry(max_clients=1, history_limit=10)
    first = admit(registry)
    registry.depart(first.name, DisconnectReason.EXIT, 1.0)
    second = admit(registry)
    assert (first.name, second.name) == ("Client01", "Client02")


def test_full_registry_rejects_and_counts() -> None:
    registry = MemoryRegistry(max_clients=2, history_limit=10)
    admit(registry)
    admit(registry)
    assert registry.admit("127.0.0.1:3", 0.0) is None
    assert registry.admit("127.0.0.1:4", 0.0) is None
    snapshot = registry.snapshot(None)
    assert (snapshot.connected, snapshot.rejected, snapshot.seen) == (2, 2, 2)


def test_departure_frees_the_slot_and_records_time_and_reason() -> None:
    registry = MemoryRegistry(max_clients=1, history_limit=10)
    record = admit(registry, "10.0.0.1:5", now=100.0)
    ended = registry.depart(record.name, DisconnectReason.RESET, 160.0)
    assert ended == SessionRecord(1, "Client01", "10.0.0.1:5", 100.0, 160.0, DisconnectReason.RESET)
    assert registry.connected_count == 0
    assert admit(registry).name == "Client02"


def test_history_is_bounded_oldest_first_and_drops_are_counted() -> None:
    registry = MemoryRegistry(max_clients=5, history_limit=3)
    for _ in range(5):
        registry.depart(admit(registry).name, DisconnectReason.EXIT, 1.0)
    snapshot = registry.snapshot(None)
    assert [record.name for record in snapshot.sessions] == ["Client03", "Client04", "Client05"]
    assert snapshot.dropped == 2


def test_zero_history_keeps_no_departed_sessions() -> None:
    registry = MemoryRegistry(max_clients=5, history_limit=0)
    registry.depart(admit(registry).name, DisconnectReason.EXIT, 1.0)
    snapshot = registry.snapshot(None)
    assert (snapshot.sessions, snapshot.dropped) == ([], 1)


def test_snapshot_limits_departed_but_always_lists_the_connected() -> None:
    registry = MemoryRegistry(max_clients=10, history_limit=100)
    staying = admit(registry)
    for _ in range(6):
        registry.depart(admit(registry).name, DisconnectReason.CLOSED_BY_PEER, 2.0)
    snapshot = registry.snapshot(2)
    assert [record.name for record in snapshot.sessions] == [staying.name, "Client06", "Client07"]
    assert snapshot.hidden == 4
    assert registry.snapshot(None).hidden == 0


def test_max_clients_can_change_and_lowering_it_kicks_nobody() -> None:
    registry = MemoryRegistry(max_clients=3, history_limit=10)
    admit(registry)
    admit(registry)
    registry.max_clients = 1
    assert registry.connected_count == 2
    assert registry.admit("127.0.0.1:9", 0.0) is None
    registry.max_clients = 4
    assert registry.admit("127.0.0.1:9", 0.0) is not None


@pytest.mark.parametrize("value", [0, -1])
def test_max_clients_must_be_positive(value: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryRegistry(max_clients=value, history_limit=10)
