"""A token bucket: an average rate with room for bursts, for messages and connections.

The bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second; each event
takes one (or ``amount``) and is refused when too few are left. It is pure: the caller
passes the time in, from one monotonic clock, so it can be tested without waiting. A
clock that goes backwards adds nothing rather than taking tokens away.
"""

from __future__ import annotations

import math


class TokenBucket:
    """Allows ``rate`` events a second on average and up to ``burst`` at once."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not 0 < rate < math.inf:
            raise ValueError("rate must be a finite number above 0")
        if not 1 <= burst < math.inf:
            raise ValueError("burst must be a finite number of at least 1")
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Refill for the time since the last call, then take ``amount`` if there is enough."""
        elapsed = now - self._stamp
        if elapsed > 0:
            tokens = self._tokens + elapsed * self._rate
            self._tokens = tokens if tokens < self._burst else self._burst
            self._stamp = now
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled completely by ``now``, so past excess is forgiven."""
        return self._tokens + max(now - self._stamp, 0.0) * self._rate >= self._burst
