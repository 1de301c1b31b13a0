"""The alert stream's history: the entries after a position, page by page,
and whether the stream still held all of them (it is capped with
``XADD MAXLEN ~``, so old entries are trimmed from its head).

Used by the WebSocket ``since`` replay and by ``GET /alerts``.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from functools import partial

from redis.asyncio import Redis

from .models import InvalidAlert, parse_alert, visible_to
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
    page was read (and knew that position). ``more``: the page is full, more
    entries may follow. ``newest``: the stream's newest entry when the page
    was read (``0-0`` when empty), None when not asked.
    """

    alerts: list[tuple[str, dict]]
    last: StreamPosition | None
    complete: bool
    more: bool
    newest: StreamPosition | None = None


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

    async def page_after(self, after: StreamPosition,
                         until: StreamPosition | None = None) -> HistoryPage:
        """At most ``page_size`` entries strictly after ``after`` (and up to
        ``until`` included, when given).

        Completeness without Redis 7's ``max-deleted-entry-id`` (Redis 6.2 is
        supported): trimming removes the oldest entries, so nothing after
        ``after`` is missing when the oldest entry left is at most the position
        right after ``after``. The oldest entry and the page are read in one
        MULTI, so a trim cannot slip in between. A stream that is empty or
        gone is complete only for ``after`` = ``0-0``, and a position beyond
        the newest entry (another stream's, a client clock running ahead)
        never is: the stream cannot tell what came before it.
        """
        start = successor(after)
        if start is None:  # nothing can come after the largest id
            return HistoryPage([], None, True, False)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrange(self.stream_key, count=1)
            pipe.xrevrange(self.stream_key, count=1)
            pipe.xrange(self.stream_key, min=format_stream_id(start),
                        max="+" if until is None else format_stream_id(until),
                        count=self.page_size)
            oldest, newest, entries = await pipe.execute()
        newest_position = parse_stream_id(newest[0][0].decode()) if newest else ORIGIN
        complete = after <= newest_position and (
            parse_stream_id(oldest[0][0].decode()) <= start if oldest else after == ORIGIN)
        return replace(self._page(entries, complete), newest=newest_position)

    async def page_before(self, before: StreamPosition | None) -> HistoryPage:
        """At most ``page_size`` entries strictly before ``before`` (None: from the
        newest one), **newest first**; ``complete`` is always true."""
        newest = "+" if before is None else f"({format_stream_id(before)}"
        entries = await self.redis.xrevrange(self.stream_key, max=newest, count=self.page_size)
        return self._page(entries, True)

    def _page(self, entries, complete: bool) -> HistoryPage:
        alerts = []
        for entry_id, fields in entries:
            stream_id = entry_id.decode()
            try:
                alerts.append((stream_id, decode_entry(stream_id, fields)))
            except InvalidAlert as exc:
                log.debug("history: skipping invalid entry %s: %s", stream_id, exc)
        last = parse_stream_id(entries[-1][0].decode()) if entries else None
        return HistoryPage(alerts, last, complete, len(entries) == self.page_size)

    def pages_after(self, after: StreamPosition,
                    until: StreamPosition | None = None) -> AsyncIterator[HistoryPage]:
        """Pages after ``after`` until ``until``, or else until the end of the
        stream as it grows meanwhile."""
        return self._follow(partial(self.page_after, until=until), after)

    def pages_before(self, before: StreamPosition | None) -> AsyncIterator[HistoryPage]:
        """Pages before ``before`` (None: the newest entry) back to the oldest, newest first."""
        return self._follow(self.page_before, before)

    @staticmethod
    async def _follow(read_page, position) -> AsyncIterator[HistoryPage]:
        # Each page continues from the last entry of the one before, until a
        # page is not full.
        while True:
            page = await read_page(position)
            yield page
            if not page.more:
                return
            position = page.last


@dataclass(frozen=True, slots=True)
class VisibleAlerts:
    """An answer of ``GET /alerts``: ``alerts`` oldest first; ``next`` the
    position to ask ``since`` from next time; ``complete`` as in ``HistoryPage``."""

    alerts: list[tuple[str, dict]]
    next: StreamPosition
    complete: bool


async def visible_after(history: StreamHistory, principals: frozenset[str],
                        since: StreamPosition, *, limit: int, scan_limit: int) -> VisibleAlerts:
    """The first ``limit`` alerts after ``since`` that ``principals`` may see.

    Looks at ``scan_limit`` entries at most; ``next`` is the last one looked at,
    so asking again from it skips nothing.
    """
    found: list[tuple[str, dict]] = []
    position, complete, scanned = since, True, 0
    async for page in history.pages_after(since):
        complete = complete and page.complete
        for stream_id, alert in page.alerts:
            if visible_to(alert, principals):
                found.append((stream_id, alert))
                if len(found) == limit:
                    return VisibleAlerts(found, parse_stream_id(stream_id), complete)
        position = page.last or position
        scanned += history.page_size
        if scanned >= scan_limit:
            break
    return VisibleAlerts(found, position, complete)


async def visible_latest(history: StreamHistory, principals: frozenset[str], *,
                         limit: int, scan_limit: int) -> VisibleAlerts:
    """The newest ``limit`` alerts ``principals`` may see, oldest first; ``next``
    is the newest entry of the stream (``0-0`` when empty)."""
    found: list[tuple[str, dict]] = []
    newest: StreamPosition | None = None
    scanned = 0
    async for page in history.pages_before(None):
        if newest is None and page.alerts:
            newest = parse_stream_id(page.alerts[0][0])
        for stream_id, alert in page.alerts:
            if visible_to(alert, principals):
                found.append((stream_id, alert))
                if len(found) == limit:
                    break
        scanned += history.page_size
        if len(found) == limit or scanned >= scan_limit:
            break
    found.reverse()
    return VisibleAlerts(found, newest or ORIGIN, True)
