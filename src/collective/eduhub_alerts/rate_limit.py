"""A per-minute budget for POST @alerts, per user and per client address.

Counters live in Redis (a fixed one-minute window per key), so every Plone
instance behind the load balancer shares them.
"""

import logging
import redis
import time


logger = logging.getLogger(__name__)

KEY_PREFIX = "eduhub:ratelimit:alerts-post:"


def retry_after(client, identities: list[str], per_minute: int, now: float | None = None) -> int:
    """Count one request for each identity; return 0 when it is within the
    budget, else the seconds until the window ends (for Retry-After).

    When Redis is unreachable requests are allowed: the alert itself then
    waits in the outbox, and refusing service would not protect anything.
    """
    now = time.time() if now is None else now
    window = int(now // 60)
    try:
        pipe = client.pipeline(transaction=False)
        for identity in identities:
            key = f"{KEY_PREFIX}{identity}:{window}"
            pipe.incr(key)
            pipe.expire(key, 120)
        counts = pipe.execute()[::2]
    except redis.RedisError as exc:
        logger.warning("rate limit not applied, Redis unreachable: %s", exc)
        return 0
    if max(counts) > per_minute:
        return max(1, (window + 1) * 60 - int(now))
    return 0
