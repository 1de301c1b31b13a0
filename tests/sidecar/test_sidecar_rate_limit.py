"""Token buckets and the per-key limiter, on a clock the test turns."""

from eduhub_alerts_sidecar.rate_limit import KeyedRateLimiter, Rate, TokenBucket

import pytest


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refuses():
    bucket = TokenBucket(Rate(1.0, 3), now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_the_rate_up_to_the_burst():
    bucket = TokenBucket(Rate(2.0, 3), now=0.0)
    for _ in range(3):
        bucket.take(0.0)
    assert not bucket.take(0.4)  # 0.8 of a token
    assert bucket.take(0.5)
    assert bucket.is_full(100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_retry_after_says_when_the_next_token_comes():
    bucket = TokenBucket(Rate.per_minute(20), now=0.0)
    for _ in range(20):
        assert bucket.take(0.0)
    assert bucket.retry_after(0.0) == pytest.approx(3.0)
    assert bucket.retry_after(2.0) == pytest.approx(1.0)
    assert bucket.retry_after(3.0) == 0.0


def test_a_clock_going_backwards_never_adds_tokens():
    bucket = TokenBucket(Rate(1.0, 1), now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)


def test_keyed_limiter_counts_each_key_on_its_own():
    clock = Clock()
    limiter = KeyedRateLimiter(Rate.per_minute(2), clock=clock)
    assert limiter.check("10.0.0.1") is None
    assert limiter.check("10.0.0.1") is None
    assert limiter.check("10.0.0.1") == pytest.approx(30.0)
    assert limiter.check("10.0.0.2") is None
    clock.now += 30
    assert limiter.check("10.0.0.1") is None


def test_keyed_limiter_forgets_quiet_keys_first_when_full():
    clock = Clock()
    limiter = KeyedRateLimiter(Rate(1.0, 1), max_keys=3, clock=clock)
    limiter.check("quiet")
    clock.now += 10  # "quiet" is back at its burst
    limiter.check("busy-1")
    limiter.check("busy-2")
    limiter.check("new")  # makes room by forgetting "quiet" only
    assert len(limiter) == 3
    assert limiter.check("busy-1") is not None  # still remembered, still limited


def test_keyed_limiter_stays_bounded_when_every_key_is_busy():
    clock = Clock()
    limiter = KeyedRateLimiter(Rate(1.0, 1), max_keys=3, clock=clock)
    for n in range(10):
        limiter.check(f"client-{n}")
    assert len(limiter) == 3
