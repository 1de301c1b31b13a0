"""Token-bucket rate limits, for client messages on a WebSocket and for HTTP
requests per client address.

A bucket holds up to ``burst`` tokens and gains ``per_second`` tokens a
second; each request takes one. The policy (``Rate``) is shared, so a
bucket is two floats: cheap enough for one per connection.
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import time


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` sustained, ``burst`` at once."""

    per_second: float
    burst: int

    @classmethod
    def per_minute(cls, count: int) -> "Rate":
        """``count`` requests a minute, all of which may come at once."""
        return cls(count / 60, count)


class TokenBucket:
    """The state of one limited client: tokens left and when they were counted."""

    __slots__ = ("rate", "tokens", "updated")

    def __init__(self, rate: Rate, now: float):
        self.rate = rate
        self.tokens = float(rate.burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.rate.burst), self.tokens + elapsed * self.rate.per_second)
        self.updated = now

    def take(self, now: float) -> bool:
        """Take one token if there is one; False means: refuse this request."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self, now: float) -> float:
        """Seconds until a token is available (0 when one is)."""
        self._refill(now)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate.per_second

    def is_full(self, now: float) -> bool:
        """True when the bucket is back at ``burst``: it may as well be forgotten."""
        self._refill(now)
        return self.tokens >= self.rate.burst


class KeyedRateLimiter:
    """One bucket per key (a client address), in bounded memory.

    When ``max_keys`` buckets exist, full ones (clients quiet long enough to
    be back at their burst) are forgotten; if that is not enough, the oldest
    are, which can only make the limit more lenient, never lock anyone out.
    """

    def __init__(self, rate: Rate, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: Hashable) -> float | None:
        """None when ``key`` may proceed (a token is taken), else seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
        if bucket.take(now):
            return None
        return bucket.retry_after(now)

    def _prune(self, now: float) -> None:
        for key in [key for key, bucket in self._buckets.items() if bucket.is_full(now)]:
            del self._buckets[key]
        excess = len(self._buckets) - self.max_keys + 1
        for key in list(self._buckets)[:max(0, excess)]:
            del self._buckets[key]
