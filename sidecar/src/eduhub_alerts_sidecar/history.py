"""The alert stream's history: the entries after a position, page by page,
and whether the stream still held all of them (it is capped with
``XADD MAXLEN ~``, so old entries are trimmed from its head).

Used by the WebSocket ``since`` replay and by ``GET /alerts``.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from .models import InvalidAlert, parse_alert
from .stream_ids import ORIGIN, StreamPosition, format_stream_id, parse_stream_id, successor

import logging


log = logging.getLogger(__name__)

ALERT_FIELD = b"alert"  # each stream entry has one field, holding the alert's JSON


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Entries read after a position, in stream order.

    ``alerts``: the valid alerts with their stream ids (invalid entries are
    skipped; the live reader logs and counts them). ``last``: the position of
    the last entry read, valid or not, None when there was none. ``complete``:
    the stream still held every entry after the requested position when the
    page was read. ``more``: the page is full, more entries may follow.
    """

    alerts: list[tuple[str, dict]]
    last: StreamPosition | None
    complete: bool
    more: bool


def decode_entry(stream_id: str, fields: dict[bytes, bytes]) -> dict:
    """The alert of one stream entry; ``InvalidAlert`` when it has none or a bad one."""
    raw = fields.get(ALERT_FIELD)
    if raw is None:
        raise InvalidAlert("", f"entry {stream_id} has no {ALERT_FIELD.decode()!r} field")
    return parse_alert(raw)


class StreamHistory:
    """Reads the stream ``stream_key`` with ``XRANGE``, ``page_size`` entries at a time."""

    def __init__(self, redis: Redis, stream_key: str, *, page_size: int = 100):
        self.redis = redis
        self.stream_key = stream_key
        self.page_size = page_size

    async def page_after(self, after: StreamPosition) -> HistoryPage:
        """At most ``page_size`` entries strictly after ``after``.

        Completeness without Redis 7's ``max-deleted-entry-id`` (Redis 6.2 is
        supported): trimming removes the oldest entries, so nothing after
        ``after`` is missing when the oldest entry left is at most the position
        right after ``after``. The oldest entry and the page are read in one
        MULTI, so a trim cannot slip in between. A stream that is empty or
        gone is complete only for ``after`` = ``0-0``.
        """
        start = successor(after)
        if start is None:  # nothing can come after the largest id
            return HistoryPage([], None, True, False)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrange(self.stream_key, count=1)
            pipe.xrange(self.stream_key, min=format_stream_id(start), count=self.page_size)
            oldest, entries = await pipe.execute()
        if oldest:
            complete = parse_stream_id(oldest[0][0].decode()) <= start
        else:
            complete = after == ORIGIN
        alerts = []
        for entry_id, fields in entries:
            stream_id = entry_id.decode()
            try:
                alerts.append((stream_id, decode_entry(stream_id, fields)))
            except InvalidAlert as exc:
                log.debug("history: skipping invalid entry %s: %s", stream_id, exc)
        last = parse_stream_id(entries[-1][0].decode()) if entries else None
        return HistoryPage(alerts, last, complete, len(entries) == self.page_size)

    async def pages_after(self, after: StreamPosition) -> AsyncIterator[HistoryPage]:
        """Pages after ``after`` until the end of the stream as it grows meanwhile."""
        while True:
            page = await self.page_after(after)
            yield page
            if not page.more or page.last is None:
                return
            after = page.last
