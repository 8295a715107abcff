"""The per-address connection policy: deny and allow lists, limits, exemptions, memory."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

import pytest

from ackchat.admission import AddressPolicy, Refusal, parse_network_list, parse_networks

LOOPBACK = ("127.0.0.0/8", "::1")


def test_refusals_say_why_in_words() -> None:
    assert [str(refusal) for refusal in Refusal] == [
        "address not allowed",
        "too many connections from this address",
        "connecting too fast from this address",
        "wrong passwords",
    ]


def test_an_empty_policy_admits_everyone() -> None:
    policy = AddressPolicy()
    assert [policy.check(host, 0.0) for host in ("10.0.0.1", "10.0.0.1", "::1", "")] == [None] * 4


# Deny and allow lists


def test_deny_list_refuses_its_addresses_and_networks() -> None:
    policy = AddressPolicy(deny=["10.0.0.0/8", "2001:db8::1"])
    assert policy.check("10.20.30.40", 0.0) is Refusal.DENIED
    assert policy.check("2001:db8::1", 0.0) is Refusal.DENIED
    assert policy.check("2001:db8::2", 0.0) is None
    assert policy.check("11.0.0.1", 0.0) is None


def test_allow_list_admits_only_its_networks() -> None:
    policy = AddressPolicy(allow=["192.168.1.0/24", "2001:db8::/32"])
    assert policy.check("192.168.1.77", 0.0) is None
    assert policy.check("2001:db8:1::5", 0.0) is None
    assert policy.check("192.168.2.1", 0.0) is Refusal.DENIED
    assert policy.check("2001:db9::1", 0.0) is Refusal.DENIED


def test_deny_beats_allow() -> None:
    policy = AddressPolicy(allow=["10.0.0.0/8"], deny=["10.1.0.0/16"])
    assert policy.check("10.1.2.3", 0.0) is Refusal.DENIED
    assert policy.check("10.2.2.3", 0.0) is None


def test_ipv4_mapped_peers_match_ipv4_networks() -> None:
    policy = AddressPolicy(allow=["10.0.0.0/8"], deny=["10.9.0.0/16"])
    assert policy.check("::ffff:10.0.0.1", 0.0) is None
    assert policy.check("::ffff:10.9.0.1", 0.0) is Refusal.DENIED
    assert policy.check("::ffff:11.0.0.1", 0.0) is Refusal.DENIED


def test_ipv4_mapped_list_entries_match_ipv4_peers() -> None:
    policy = AddressPolicy(deny=["::ffff:10.0.0.0/104"])
    assert policy.check("10.1.1.1", 0.0) is Refusal.DENIED
    assert policy.check("::ffff:10.1.1.1", 0.0) is Refusal.DENIED
    assert policy.check("11.1.1.1", 0.0) is None


def test_an_ipv6_zone_is_ignored() -> None:
    assert AddressPolicy(deny=["fe80::/64"]).check("fe80::1%eth0", 0.0) is Refusal.DENIED
    policy = AddressPolicy(max_per_address=1)
    assert policy.check("fe80::1%eth0", 0.0) is None
    assert policy.check("fe80::1", 0.0) is Refusal.TOO_MANY_CONNECTIONS
    policy.closed("fe80::1%eth0")
    assert policy.tracked_addresses == 0


def test_a_host_that_is_not_an_ip_address_matches_no_network_and_is_not_limited() -> None:
    open_policy = AddressPolicy(deny=["0.0.0.0/0", "::/0"], max_per_address=1, connect_rate=1.0)
    assert [open_policy.check("/run/ackchat.sock", 0.0) for _ in range(3)] == [None] * 3
    open_policy.closed("/run/ackchat.sock")
    assert open_policy.tracked_addresses == 0
    assert AddressPolicy(allow=["127.0.0.1"]).check("", 0.0) is Refusal.DENIED


# Per-address limits


def test_concurrent_connections_are_limited_per_address() -> None:
    policy = AddressPolicy(max_per_address=2)
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("10.0.0.1", 0.0) is Refusal.TOO_MANY_CONNECTIONS
    assert policy.check("10.0.0.2", 0.0) is None
    policy.closed("10.0.0.1")
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("10.0.0.1", 0.0) is Refusal.TOO_MANY_CONNECTIONS


def test_mapped_and_plain_forms_of_one_address_share_a_count() -> None:
    policy = AddressPolicy(max_per_address=1)
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("::ffff:10.0.0.1", 0.0) is Refusal.TOO_MANY_CONNECTIONS
    policy.closed("::ffff:10.0.0.1")
    assert policy.check("10.0.0.1", 0.0) is None


def test_a_refused_check_is_not_counted_as_open() -> None:
    policy = AddressPolicy(deny=["10.9.0.0/16"], max_per_address=1, connect_rate=1.0)
    assert policy.check("10.9.0.1", 0.0) is Refusal.DENIED
    assert policy.tracked_addresses == 0
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("10.0.0.1", 0.0) is Refusal.TOO_MANY_CONNECTIONS
    policy.closed("10.0.0.1")
    assert policy.check("10.0.0.1", 1.0) is None


def test_connects_are_throttled_per_address() -> None:
    policy = AddressPolicy(connect_rate=2.0, connect_burst=3)
    checks = [policy.check("10.0.0.1", 0.0) for _ in range(4)]
    assert checks == [None, None, None, Refusal.CONNECTING_TOO_FAST]
    assert policy.check("10.0.0.2", 0.0) is None
    assert policy.check("10.0.0.1", 0.5) is None
    assert policy.check("10.0.0.1", 0.5) is Refusal.CONNECTING_TOO_FAST


def test_concurrency_is_checked_before_the_rate_and_spends_no_token() -> None:
    policy = AddressPolicy(max_per_address=1, connect_rate=1.0, connect_burst=1)
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("10.0.0.1", 0.0) is Refusal.TOO_MANY_CONNECTIONS
    policy.closed("10.0.0.1")
    assert policy.check("10.0.0.1", 0.0) is Refusal.CONNECTING_TOO_FAST
    assert policy.check("10.0.0.1", 1.0) is None


def test_exempt_networks_skip_the_limits_but_not_the_lists() -> None:
    policy = AddressPolicy(
        deny=["127.0.0.2"],
        max_per_address=1,
        connect_rate=1.0,
        connect_burst=1,
        exempt=LOOPBACK,
    )
    assert [policy.check("127.0.0.1", 0.0) for _ in range(5)] == [None] * 5
    assert [policy.check("::1", 0.0) for _ in range(5)] == [None] * 5
    assert policy.check("127.0.0.2", 0.0) is Refusal.DENIED
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("10.0.0.1", 0.0) is Refusal.TOO_MANY_CONNECTIONS
    assert AddressPolicy(allow=["10.0.0.0/8"], exempt=LOOPBACK).check("::1", 0.0) is (
        Refusal.DENIED
    )


def test_closing_more_than_was_opened_is_harmless() -> None:
    policy = AddressPolicy(max_per_address=1, exempt=LOOPBACK)
    policy.closed("10.0.0.1")
    policy.closed("127.0.0.1")
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("10.0.0.1", 0.0) is Refusal.TOO_MANY_CONNECTIONS


# Bounded memory


def test_state_is_dropped_when_closed_and_refilled() -> None:
    policy = AddressPolicy(max_per_address=4, connect_rate=1.0, connect_burst=2)
    assert policy.check("10.0.0.1", 0.0) is None
    assert policy.check("10.0.0.2", 0.0) is None
    policy.closed("10.0.0.1")
    assert policy.tracked_addresses == 2  # 10.0.0.1's bucket has not refilled yet.
    assert policy.check("10.0.0.3", 1.0) is None
    # Both refilled buckets are gone; 10.0.0.2 is still counted as open.
    assert policy.tracked_addresses == 2
    policy.closed("10.0.0.2")
    policy.closed("10.0.0.3")
    assert policy.check("10.0.0.4", 5.0) is None
    assert policy.tracked_addresses == 1


def test_a_storm_from_many_addresses_keeps_only_recent_buckets() -> None:
    policy = AddressPolicy(connect_rate=1.0, connect_burst=1, exempt=LOOPBACK)
    most = 0
    for number in range(100_000):
        host = f"10.{number >> 16}.{(number >> 8) & 255}.{number & 255}"
        assert policy.check(host, number / 1000) is None
        policy.closed(host)
        if number % 1000 == 0:
            most = max(most, policy.tracked_addresses)
    # A bucket refills one second after its address connected: 1,000 connects' worth.
    assert most <= 1001


def test_a_storm_in_one_instant_keeps_at_most_max_tracked_buckets() -> None:
    policy = AddressPolicy(connect_rate=1.0, connect_burst=1, max_tracked=100)
    hosts = [f"2001:db8::{number:x}" for number in range(5000)]
    for host in hosts:
        assert policy.check(host, 0.0) is None
    assert policy.tracked_addresses == 5000  # All are still open.
    for host in hosts:
        policy.closed(host)
    assert policy.tracked_addresses == 100
    # The least recently used address was forgotten; the most recent is still limited.
    assert policy.check(hosts[0], 0.0) is None
    assert policy.check(hosts[-1], 0.0) is Refusal.CONNECTING_TOO_FAST


def test_a_recently_used_bucket_outlives_an_older_one_at_the_cap() -> None:
    policy = AddressPolicy(connect_rate=1.0, connect_burst=2, max_tracked=2)
    assert [policy.check(host, 0.0) for host in ("10.0.0.1", "10.0.0.2", "10.0.0.1")] == [None] * 3
    assert policy.check("10.0.0.3", 0.0) is None  # Forgets 10.0.0.2, used least recently.
    assert policy.check("10.0.0.1", 0.0) is Refusal.CONNECTING_TOO_FAST
    assert policy.check("10.0.0.2", 0.0) is None


# Configuration


def test_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_per_address"):
        AddressPolicy(max_per_address=-1)
    with pytest.raises(ValueError, match="connect_rate"):
        AddressPolicy(connect_rate=-1.0)
    with pytest.raises(ValueError, match="connect_burst"):
        AddressPolicy(connect_rate=1.0, connect_burst=0)
    with pytest.raises(ValueError, match="max_tracked"):
        AddressPolicy(max_tracked=0)
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        AddressPolicy(deny=["10.0.0.300"])


def test_parse_networks_accepts_addresses_and_networks_of_both_families() -> None:
    assert parse_networks([" 10.1.2.3/8", "::1", "2001:db8::1/32", "::ffff:10.0.0.0/104"]) == [
        IPv4Network("10.0.0.0/8"),
        IPv6Network("::1/128"),
        IPv6Network("2001:db8::/32"),
        IPv4Network("10.0.0.0/8"),
    ]


@pytest.mark.parametrize("entry", ["", "example.org", "10.0.0.0/33", "10.0.0.1:80", "::g"])
def test_parse_networks_names_the_bad_entry(entry: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address or network") as raised:
        parse_networks(["10.0.0.0/8", entry])
    assert repr(entry) in str(raised.value)


def test_parse_network_list_takes_a_comma_separated_string() -> None:
    assert parse_network_list(" 10.0.0.1, 192.168.0.0/16 ,, ::1,") == (
        "10.0.0.1/32",
        "192.168.0.0/16",
        "::1/128",
    )
    assert parse_network_list("") == ()


def test_parse_network_list_takes_a_list_of_strings() -> None:
    assert parse_network_list(["10.1.0.0/16", "2001:db8::/32"]) == ("10.1.0.0/16", "2001:db8::/32")
    assert parse_network_list([]) == ()


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("10.0.0.0/8, x", "'x'"),
        ("10.0.0.0/8 192.168.0.0/16", "'10.0.0.0/8 192.168.0.0/16'"),
        (["10.0.0.0/8", 5], "5"),
        (["10.0.0.0/8", ""], "''"),
    ],
)
def test_parse_network_list_names_the_bad_entry(value: object, bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not one$") as raised:
        parse_network_list(value)
    assert str(raised.value) == (
        f"must be a comma-separated list of addresses or networks (CIDR); {bad} is not one"
    )


@pytest.mark.parametrize("value", [5, None, {"a": "10.0.0.0/8"}])
def test_parse_network_list_rejects_other_types(value: object) -> None:
    with pytest.raises(ValueError, match=r"^must be a comma-separated list of addresses"):
        parse_network_list(value)


def test_parse_network_list_output_parses_to_the_same_networks() -> None:
    value = parse_network_list("10.1.2.3/8, ::ffff:1.2.3.4")
    assert value == ("10.0.0.0/8", "1.2.3.4/32")
    assert parse_networks(value) == parse_networks(["10.0.0.0/8", "1.2.3.4"])
