"""The token bucket: bursts, refill, the cap, forgiveness and its arguments."""

from __future__ import annotations

import math

import pytest

from ackchat.ratelimit import TokenBucket


def takes(bucket: TokenBucket, now: float, count: int) -> list[bool]:
    return [bucket.take(now) for _ in range(count)]


def test_starts_full_and_allows_a_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=1.0, burst=3, now=100.0)
    assert takes(bucket, 100.0, 4) == [True, True, True, False]


def test_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=2, now=0.0)
    assert takes(bucket, 0.0, 3) == [True, True, False]
    assert takes(bucket, 0.25, 2) == [True, False]
    assert takes(bucket, 0.75, 3) == [True, True, False]


def test_refill_is_capped_at_the_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    assert takes(bucket, 1000.0, 3) == [True, True, False]


def test_a_refused_take_costs_nothing() -> None:
    bucket = TokenBucket(rate=2.0, burst=1, now=0.0)
    assert takes(bucket, 0.0, 5) == [True, False, False, False, False]
    assert bucket.take(0.5)


def test_amount_takes_several_tokens_or_none() -> None:
    bucket = TokenBucket(rate=1.0, burst=5, now=0.0)
    assert bucket.take(0.0, amount=3)
    assert not bucket.take(0.0, amount=3)
    assert bucket.take(0.0, amount=2)
    assert not bucket.take(0.0, amount=0.5)


def test_a_clock_going_backwards_neither_adds_nor_removes_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=10.0)
    assert bucket.take(10.0)
    assert bucket.take(5.0)
    assert not bucket.take(5.0)
    # Time is measured from the latest moment seen, so nothing is refilled twice.
    assert bucket.take(11.0)
    assert not bucket.take(11.0)


def test_full_once_refilled_completely() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
    assert bucket.full(0.0)
    takes(bucket, 0.0, 3)
    assert not bucket.full(0.5)
    assert bucket.full(1.0)
    assert bucket.full(50.0)
    assert not bucket.full(-1.0)


def test_full_does_not_change_the_bucket() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    assert bucket.take(0.0)
    assert bucket.full(5.0)
    assert bucket.take(1.0)
    assert not bucket.take(1.0)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
def test_rejects_a_rate_that_is_not_positive_and_finite(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=rate, burst=1, now=0.0)


@pytest.mark.parametrize("burst", [0.0, 0.5, -1.0, math.inf, math.nan])
def test_rejects_a_burst_below_one_or_not_finite(burst: float) -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate=1.0, burst=burst, now=0.0)
