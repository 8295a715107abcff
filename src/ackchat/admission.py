"""Which peers may connect: deny and allow lists, and per-address limits.

:class:`AddressPolicy` is asked once per accepted TCP connection, before anything else
is done for it. The rules, in order: an address in the deny list is refused; when the
allow list is not empty, an address outside it is refused; then, unless the address is
exempt, it may hold at most ``max_per_address`` connections at once and open new ones
at ``connect_rate`` a second (with bursts of ``connect_burst``).

Addresses are compared as IP addresses, so ``::ffff:10.0.0.1`` (an IPv4 peer on a
dual-stack socket) is ``10.0.0.1``, and an IPv6 zone (``%eth0``) is ignored. A host
that is not an IP address (a UNIX socket, say) is in no network, so a non-empty allow
list refuses it, and it is not limited.

Memory stays bounded however many addresses connect. Open-connection counts exist only
for addresses with open connections. Connect-rate buckets are kept in least recently
used order: each check drops the oldest ones that have refilled (a full bucket is the
same as a new one), so only addresses seen within the last ``connect_burst /
connect_rate`` seconds are kept; and there are never more than ``max_tracked``, the
least recently used being dropped (forgiving its address) to make room. What the lists
say of a host is remembered for the last ``STANDING_CACHE_SIZE`` hosts seen, so a
returning address is not parsed and compared again.

The policy is pure: the caller passes the time in.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from ackchat.ratelimit import TokenBucket

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

# Hosts whose standing (denied, exempt or limited) is remembered, the least recently seen
# forgotten first.
STANDING_CACHE_SIZE = 4096

NETWORK_LIST = "must be a comma-separated list of addresses or networks (CIDR)"


class Refusal(StrEnum):
    """Why a connection was turned away before it got a name, as ``status`` counts it.

    The policy's refusals are also what the peer is told (``Connection refused: …``).
    """

    DENIED = "address not allowed"
    TOO_MANY_CONNECTIONS = "too many connections from this address"
    CONNECTING_TOO_FAST = "connecting too fast from this address"
    # Not the policy's but authentication's: counted with the rest in ``status``.
    WRONG_PASSWORD = "wrong passwords"


def parse_networks(values: Sequence[str]) -> list[Network]:
    """Networks from addresses or CIDR networks; host bits and surrounding spaces are ignored."""
    networks = []
    for value in values:
        try:
            networks.append(_network(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network (CIDR)") from None
    return networks


def parse_network_list(value: object) -> tuple[str, ...]:
    """A settings parser: a comma-separated string or a list of strings, as CIDR networks."""
    if isinstance(value, str):
        items: list[object] = [piece for item in value.split(",") if (piece := item.strip())]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(NETWORK_LIST)
    networks = []
    for item in items:
        if not isinstance(item, str):
            raise _not_a_network(item)
        try:
            networks.append(str(_network(item)))
        except ValueError:
            raise _not_a_network(item) from None
    return tuple(networks)


class AddressPolicy:
    """Admits or refuses each new connection by its peer's address; counts open ones."""

    def __init__(
        self,
        *,
        allow: Sequence[str] = (),
        deny: Sequence[str] = (),
        max_per_address: int = 0,
        connect_rate: float = 0.0,
        connect_burst: int = 1,
        exempt: Sequence[str] = (),
        max_tracked: int = 65536,
    ) -> None:
        if max_per_address < 0:
            raise ValueError("max_per_address must not be negative (0 means no limit)")
        if not 0 <= connect_rate < math.inf:
            raise ValueError("connect_rate must be a finite number, 0 or more (0 means no limit)")
        if connect_burst < 1:
            raise ValueError("connect_burst must be at least 1")
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")
        self._allow = parse_networks(allow)
        self._deny = parse_networks(deny)
        self._exempt = parse_networks(exempt)
        self._max_per_address = max_per_address
        self._connect_rate = connect_rate
        self._connect_burst = connect_burst
        self._max_tracked = max_tracked
        # What the lists say of a host, kept for the hosts seen last: most connections
        # come from addresses that connected before.
        self._standing = lru_cache(maxsize=STANDING_CACHE_SIZE)(self._look_up)
        # Both keyed by the packed address, which hashes much faster than the address.
        self._open: dict[bytes, int] = {}
        # Least recently used first; every bucket here has been taken from recently.
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()

    @property
    def tracked_addresses(self) -> int:
        """How many addresses state is kept for (open connections or a connect-rate bucket)."""
        return len(self._open.keys() | self._buckets.keys())

    def check(self, host: str, now: float) -> Refusal | None:
        """Refuse a new connection from ``host``, or count it as open and return None."""
        key = self._standing(host)
        if not isinstance(key, bytes):
            return key
        open_now = self._open.get(key, 0)
        if self._max_per_address and open_now >= self._max_per_address:
            return Refusal.TOO_MANY_CONNECTIONS
        if self._connect_rate and not self._take(key, now):
            return Refusal.CONNECTING_TOO_FAST
        self._open[key] = open_now + 1
        return None

    def closed(self, host: str) -> None:
        """Forget one open connection from ``host``; call once for each check that admitted."""
        key = self._standing(host)
        if not isinstance(key, bytes):
            return
        open_now = self._open.get(key, 0)
        if open_now > 1:
            self._open[key] = open_now - 1
        else:
            # Also quietly ignores an address this policy never counted (it was exempt).
            self._open.pop(key, None)

    def _look_up(self, host: str) -> bytes | Refusal | None:
        """What the allow, deny and exempt lists say of ``host``.

        A refusal; None if it is let in without limits (exempt, or not an IP address); or
        else the key under which its connections are counted (the packed address).
        """
        address = peer_address(host)
        if address is None:
            return Refusal.DENIED if self._allow else None
        if self._deny and _within(address, self._deny):
            return Refusal.DENIED
        if self._allow and not _within(address, self._allow):
            return Refusal.DENIED
        if self._exempt and _within(address, self._exempt):
            return None
        return address.packed

    def _take(self, key: bytes, now: float) -> bool:
        """Take a token from the address's connect-rate bucket, making one if needed."""
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if not oldest.full(now):
                break
            buckets.popitem(last=False)
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self._max_tracked:
                buckets.popitem(last=False)
            bucket = buckets[key] = TokenBucket(self._connect_rate, self._connect_burst, now)
        else:
            buckets.move_to_end(key)
        return bucket.take(now)


def _not_a_network(item: object) -> ValueError:
    """The error for a bad entry of a settings network list."""
    return ValueError(f"{NETWORK_LIST}; {item!r} is not one")


def _network(text: str) -> Network:
    """One network; an IPv4-mapped IPv6 one becomes IPv4, to match how peers are compared."""
    network = ip_network(text.strip(), strict=False)
    if isinstance(network, IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return IPv4Network((mapped, network.prefixlen - 96))
    return network


def peer_address(host: str) -> Address | None:
    """The peer's IP address, IPv4-mapped ones as IPv4; None if it is not an IP address."""
    try:
        address = ip_address(host)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: list[Network]) -> bool:
    """Whether the address is in any of the networks."""
    return any(address in network for network in networks)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address on this machine's loopback interface."""
    if host == "localhost":
        return True
    address = peer_address(host)
    return address is not None and address.is_loopback
