"""Appending alerts to the stream for producers that are not Plone (``POST /alerts``).

The same idempotency as Plone's publisher: a Lua script sets a marker key
per alert ``id`` (``<stream key>:pushed:<id>``, i.e.
``eduhub:alerts:pushed:<id>`` for the default stream, expiring after a week)
and appends with ``XADD MAXLEN ~`` only when the marker was not there — so a
producer retrying after a timeout publishes the alert once, whichever of
Plone or a sidecar replica took it first.
"""

from redis.asyncio import Redis

import json


DEDUPE_TTL_SECONDS = 7 * 24 * 3600
PUSH_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[1])
end
return false
"""


class AlertPublisher:
    """XADDs valid alerts to ``stream_key``, capped at about ``maxlen`` entries."""

    def __init__(self, redis: Redis, stream_key: str, *, maxlen: int):
        self.stream_key = stream_key
        self.maxlen = maxlen
        self._push_once = redis.register_script(PUSH_ONCE)

    def marker_key(self, alert_id: str) -> str:
        return f"{self.stream_key}:pushed:{alert_id}"

    async def publish(self, alert: dict) -> str | None:
        """Append ``alert`` (already valid); its stream id, or None if its ``id`` was
        pushed before (within a week)."""
        text = json.dumps(alert, separators=(",", ":"), ensure_ascii=False)
        stream_id = await self._push_once(
            keys=[self.stream_key, self.marker_key(alert["id"])],
            args=[text, self.maxlen, DEDUPE_TTL_SECONDS],
        )
        return stream_id.decode() if stream_id else None
