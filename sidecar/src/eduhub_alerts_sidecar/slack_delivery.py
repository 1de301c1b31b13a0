"""Slack delivery: the consumer group ``slack`` on the alert stream.

All replicas share the group, so each alert is posted once (``XREADGROUP``).
An entry is acknowledged (``XACK``) only when every Slack route of its alert
was posted, found already posted, or dead-lettered. What a crash or a failed
attempt leaves pending is claimed again (``XAUTOCLAIM``) once it has been
idle for ``EDUHUB_SLACK_CLAIM_IDLE_MS``, by any replica; after
``EDUHUB_SLACK_MAX_ATTEMPTS`` deliveries, or at once on an error no retry can
fix, the entry moves to the dead-letter stream with the reason.

No duplicates: before posting, a route is marked in flight with
``SET <stream>:slack:sent:<alert id>:<route> in-flight NX PX <claim idle>``;
after the post the record holds the message's channel and ``ts`` for
``EDUHUB_SLACK_IDEMPOTENCY_TTL_SECONDS``. A redelivered entry (retry, claim,
crash between post and ack) finds the record and skips that route. The one
window left is a crash between Slack's answer and the ``SET`` (a few
milliseconds): at-least-once, as Slack has no idempotency key of its own.

Redis keys (``<stream>`` is ``EDUHUB_STREAM_KEY``, ``eduhub:alerts``):

- ``<stream>`` consumer group ``slack``; consumers ``EDUHUB_SLACK_CONSUMER_NAME``
- ``<stream>:slack:sent:<alert id>:<channel:C…|user:U…|webhook:name>`` idempotency record
- ``<stream>:slack:thread:<channel id>:<source uid>`` the ``ts`` of a thread's parent
- ``<stream>:dead`` (``EDUHUB_SLACK_DEAD_LETTER_KEY``) the dead-letter stream
"""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .history import decode_entry
from .models import InvalidAlert
from .monitoring import SLACK, Metrics
from .services import raise_if_cancel_requested
from .settings import Settings
from .slack_client import SlackAPIError, SlackClient, SlackPermanentError, route_key
from .slack_messages import build_message

import asyncio
import json
import logging
import time


log = logging.getLogger(__name__)

GROUP = "slack"
IN_FLIGHT = "in-flight"
PARENT_NOTE = "Latest state of this object; earlier alerts are in the thread."

SENT, SKIPPED, FAILED, PERMANENT = "sent", "skipped", "failed", "permanent"


def sent_key(stream_key: str, alert_id: str, route: str) -> str:
    """The idempotency record of one alert on one route."""
    return f"{stream_key}:slack:sent:{alert_id}:{route}"


def thread_key(stream_key: str, channel: str, uid: str) -> str:
    """Where the parent ``ts`` of an object's thread in a channel is kept."""
    return f"{stream_key}:slack:thread:{channel}:{uid}"


def slack_routes(alert: Mapping[str, Any]) -> list[dict]:
    """The alert's Slack routes (``routes.slack``), possibly none."""
    return list((alert.get("routes") or {}).get("slack") or [])


@dataclass
class RouteOutcome:
    """What happened to one route of one alert."""

    route: str
    status: str  # sent, skipped (posted before), failed (try again), permanent
    reason: str = ""
    error: str = ""

    def as_dict(self) -> dict:
        return {"route": self.route, "status": self.status, "reason": self.reason,
                "error": self.error}


class _Pace:
    def __init__(self, pacer: "ChannelPacer", key: str):
        self.pacer, self.key = pacer, key

    async def wait(self) -> None:
        """Sleep until this channel may take the next message."""
        delay = self.pacer.next_allowed.get(self.key, 0.0) - self.pacer.clock()
        if delay > 0:
            await self.pacer.sleep(delay)

    def mark(self) -> None:
        """A message just went to this channel: the next one waits the pace."""
        self.pacer.next_allowed[self.key] = self.pacer.clock() + self.pacer.pace


class ChannelPacer:
    """At most one message per ``pace`` seconds per channel, channels independent.

    ``hold(key)`` serialises deliveries to one channel in arrival order (an
    ``asyncio.Lock`` is FIFO); waiting for a channel's pace blocks only
    deliveries to that channel.
    """

    def __init__(self, pace: float, *, clock=time.monotonic, sleep=asyncio.sleep):
        self.pace = pace
        self.clock = clock
        self.sleep = sleep
        self.locks: dict[str, asyncio.Lock] = {}
        self.next_allowed: dict[str, float] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[_Pace]:
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            yield _Pace(self, key)


class SlackDelivery:
    """One replica's consumer in the group ``slack``; ``run()`` is supervised."""

    def __init__(self, redis: Redis, client: SlackClient, metrics: Metrics, settings: Settings,
                 *, consumer: str | None = None):
        self.redis = redis
        self.client = client
        self.metrics = metrics
        self.settings = settings
        self.stream_key = settings.stream_key
        self.dead_key = settings.dead_letter_key
        # Delivery attempts per pending entry (a hash), see _start().
        self.attempts_key = f"{settings.stream_key}:slack:attempts"
        self.consumer = consumer or settings.slack_consumer_name
        self.pacer = ChannelPacer(settings.slack_pace_seconds)
        self._slots = asyncio.Semaphore(settings.slack_max_in_flight)
        self._in_flight: dict[str, asyncio.Task] = {}
        self._last_claim = float("-inf")

    # --- the group -----------------------------------------------------------

    async def ensure_group(self) -> None:
        """Create the group ``slack`` (and the stream) unless it exists.

        A new group starts ``EDUHUB_SLACK_START_LOOKBACK_SECONDS`` back (by
        Redis's clock), not at ``$``: alerts published while no sidecar ran
        yet (first deployment, Slack just configured) are posted, the old
        history is not. An existing group keeps its position.
        """
        seconds, micros = await self.redis.time()
        start_ms = max(0, seconds * 1000 + micros // 1000
                       - self.settings.slack_start_lookback_seconds * 1000)
        try:
            await self.redis.xgroup_create(self.stream_key, GROUP, id=f"{start_ms}-0",
                                           mkstream=True)
            log.info("created consumer group %s on %s at %s-0", GROUP, self.stream_key, start_ms)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Deliver forever; raises on Redis errors (the supervisor restarts it).

        Entries still being delivered when it stops (cancelled or crashed)
        stay pending and are claimed again later.
        """
        await self.ensure_group()
        try:
            while True:
                raise_if_cancel_requested()
                await self.claim_stale()
                await self.read_new()
        finally:
            await self.stop_deliveries()

    async def stop_deliveries(self) -> None:
        """Cancel the deliveries in flight and wait for them to end."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def read_new(self) -> int:
        """One ``XREADGROUP >`` (blocking up to ``EDUHUB_READER_BLOCK_MS``); starts a
        delivery per entry; returns how many entries it read."""
        response = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream_key: ">"},
            count=self.settings.reader_batch_size, block=self.settings.reader_block_ms,
        )
        entries = response[0][1] if response else []
        for entry_id, fields in entries:
            await self._start(entry_id.decode(), fields)
        return len(entries)

    async def claim_stale(self, *, force: bool = False) -> int:
        """``XAUTOCLAIM`` entries pending longer than the claim idle time (a dead
        replica's, or failed attempts) and deliver them again; returns how many.

        Runs at most every half claim idle time unless ``force``.
        """
        idle_ms = self.settings.slack_claim_idle_ms
        now = time.monotonic()
        if not force and now - self._last_claim < idle_ms / 2000:
            return 0
        self._last_claim = now
        start, claimed_count = "0-0", 0
        while True:
            next_start, claimed, *deleted = await self.redis.xautoclaim(
                self.stream_key, GROUP, self.consumer, min_idle_time=idle_ms,
                start_id=start, count=self.settings.reader_batch_size,
            )
            if deleted and deleted[0]:
                log.warning("%d pending Slack entries were trimmed from %s before delivery",
                            len(deleted[0]), self.stream_key)
            next_start = next_start.decode() if isinstance(next_start, bytes) else next_start
            vanished = False
            for entry_id, fields in claimed:
                if entry_id is None or fields is None:
                    vanished = True  # Redis 6.2's answer for an entry trimmed meanwhile
                    continue
                entry_id = entry_id.decode()
                if entry_id in self._in_flight:
                    continue  # still being delivered here: the claim only reset its idle time
                claimed_count += 1
                await self._start(entry_id, fields)
            if vanished:
                await self._ack_vanished(start, next_start)
            if next_start == "0-0":
                return claimed_count
            start = next_start

    async def _acknowledge(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream_key, GROUP, entry_id)
            pipe.hdel(self.attempts_key, entry_id)
            await pipe.execute()

    async def _ack_vanished(self, start: str, end: str) -> None:
        # Redis 7 drops trimmed entries from the pending list in XAUTOCLAIM;
        # Redis 6.2 keeps them (and answers nil without the id): find ours
        # that no longer exist and acknowledge them, or they stay forever.
        pending = await self.redis.xpending_range(
            self.stream_key, GROUP, min=start, max="+" if end == "0-0" else end,
            count=self.settings.reader_batch_size, consumername=self.consumer)
        for item in pending:
            entry_id = item["message_id"]
            if not await self.redis.xrange(self.stream_key, min=entry_id, max=entry_id):
                log.warning("pending Slack entry %s was trimmed from %s before delivery",
                            entry_id.decode(), self.stream_key)
                await self._acknowledge(entry_id.decode())

    async def _start(self, entry_id: str, fields: dict) -> None:
        # Waits for a free slot: a replica never has more than
        # EDUHUB_SLACK_MAX_IN_FLIGHT deliveries going (back-pressure on reading).
        await self._slots.acquire()
        # Attempts are counted here, when one really starts: Redis's delivery
        # counter also grows when XAUTOCLAIM takes an entry that is still
        # being delivered (a slow Slack), which would dead-letter it early.
        attempts = await self.redis.hincrby(self.attempts_key, entry_id, 1)
        task = asyncio.create_task(self.deliver_entry(entry_id, fields, attempts=attempts),
                                   name=f"slack:{entry_id}")
        self._in_flight[entry_id] = task

        def done(finished: asyncio.Task) -> None:
            self._in_flight.pop(entry_id, None)
            self._slots.release()
            if not finished.cancelled() and finished.exception() is not None:
                # Redis went away mid-delivery, say: the entry stays pending
                # and is claimed again; the reader loop notices Redis itself.
                log.error("Slack delivery of %s crashed; it stays pending", entry_id,
                          exc_info=finished.exception())

        task.add_done_callback(done)

    # --- one entry -------------------------------------------------------------

    async def deliver_entry(self, entry_id: str, fields: dict, *, attempts: int) -> None:
        """Deliver one stream entry to all its Slack routes, then settle it."""
        try:
            alert = decode_entry(entry_id, fields)
        except InvalidAlert as exc:
            log.warning("skipping invalid alert at %s %s: %s", self.stream_key, entry_id, exc)
            self.metrics.failure(SLACK, "invalid")
            await self._acknowledge(entry_id)
            return
        routes = slack_routes(alert)
        # One task per route, created in stream order: each channel's FIFO
        # lock then keeps the stream's order within the channel.
        outcomes = await asyncio.gather(*(self.deliver_route(alert, route) for route in routes))
        await self.settle(entry_id, fields, alert, outcomes, attempts=attempts)

    async def settle(self, entry_id: str, fields: dict, alert: dict,
                     outcomes: list[RouteOutcome], *, attempts: int) -> None:
        """Acknowledge, leave pending for another attempt, or dead-letter."""
        failed = [o for o in outcomes if o.status in (FAILED, PERMANENT)]
        if not failed:
            await self._acknowledge(entry_id)
            return
        permanent = [o for o in failed if o.status == PERMANENT]
        transient = [o for o in failed if o.status == FAILED]
        if transient and attempts < self.settings.slack_max_attempts:
            log.info("Slack delivery of %s (alert %s) failed, attempt %d of %d: %s; retrying "
                     "after %d ms", entry_id, alert.get("id"), attempts,
                     self.settings.slack_max_attempts,
                     ", ".join(f"{o.route} {o.reason}" for o in transient),
                     self.settings.slack_claim_idle_ms)
            return
        reason = permanent[0].reason if permanent else "max_attempts"
        await self.dead_letter(entry_id, fields, alert, failed, reason=reason, attempts=attempts)

    async def dead_letter(self, entry_id: str, fields: dict, alert: Mapping[str, Any],
                          failed: list[RouteOutcome], *, reason: str, attempts: int) -> str:
        """Move the entry to the dead-letter stream and acknowledge it, atomically."""
        raw = fields.get(b"alert") or fields.get("alert") or json.dumps(alert)
        entry = {
            "alert": raw,
            "alert_id": str(alert.get("id", "")),
            "stream_id": entry_id,
            "reason": reason,
            "errors": json.dumps([o.as_dict() for o in failed]),
            "attempts": attempts,
            "consumer": self.consumer,
            "failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_key, entry)
            pipe.xack(self.stream_key, GROUP, entry_id)
            pipe.hdel(self.attempts_key, entry_id)
            dead_id, _, _ = await pipe.execute()
        dead_id = dead_id.decode() if isinstance(dead_id, bytes) else dead_id
        self.metrics.slack_dead_lettered.labels(reason=reason).inc()
        log.warning("dead-lettered %s (alert %s) as %s: %s", entry_id, alert.get("id"), dead_id,
                    reason)
        return dead_id

    # --- one route ---------------------------------------------------------------

    async def deliver_route(self, alert: Mapping[str, Any], route: Mapping[str, str]) -> RouteOutcome:
        """Post ``alert`` to one route, at most once; never raises for Slack errors."""
        try:
            name = route_key(route)
        except SlackPermanentError as exc:
            return self._failed(json.dumps(route), exc)
        async with self.pacer.hold(name) as pace:
            record = sent_key(self.stream_key, str(alert["id"]), name)
            claimed = await self.redis.set(record, IN_FLIGHT, nx=True,
                                           px=self.settings.slack_claim_idle_ms)
            if not claimed:
                value = await self.redis.get(record)
                if value is not None and value.decode() == IN_FLIGHT:
                    # Another replica is posting it right now; its outcome decides.
                    return RouteOutcome(name, FAILED, "in_flight", "being posted elsewhere")
                return RouteOutcome(name, SKIPPED)
            try:
                if route.get("webhook"):
                    # A webhook posts to its own channel and answers no ts:
                    # no thread, no parent update; paced per webhook name.
                    channel, parent = None, None
                    await pace.wait()
                    try:
                        posted = await self.client.post_webhook(route["webhook"],
                                                                build_message(alert))
                    finally:
                        pace.mark()
                else:
                    channel = await self.client.conversation(route)
                    parent = await self._thread_parent(channel, alert)
                    await pace.wait()
                    try:
                        posted = await self.client.post_message(channel, build_message(alert),
                                                                thread_ts=parent)
                    finally:
                        pace.mark()
            except SlackAPIError as exc:
                await self.redis.delete(record)
                return self._failed(name, exc)
            except Exception:
                await self.redis.delete(record)
                raise
            await self.redis.set(record, json.dumps({"channel": posted.channel, "ts": posted.ts}),
                                 ex=self.settings.slack_idempotency_ttl_seconds)
        self.metrics.sent.labels(channel=SLACK).inc()
        if channel is not None:
            await self._after_post(posted.channel, posted.ts, parent, alert)
        return RouteOutcome(name, SENT)

    def _failed(self, name: str, exc: SlackAPIError) -> RouteOutcome:
        self.metrics.failure(SLACK, exc.reason)
        status = PERMANENT if isinstance(exc, SlackPermanentError) else FAILED
        log.warning("Slack delivery to %s failed: %s", name, exc)
        return RouteOutcome(name, status, exc.reason, str(exc))

    def _uid(self, alert: Mapping[str, Any]) -> str | None:
        if not self.settings.slack_threads:
            return None
        return (alert.get("source") or {}).get("uid") or None

    async def _thread_parent(self, channel: str, alert: Mapping[str, Any]) -> str | None:
        uid = self._uid(alert)
        if uid is None:
            return None
        parent = await self.redis.get(thread_key(self.stream_key, channel, uid))
        return parent.decode() if parent is not None else None

    async def _after_post(self, channel: str, ts: str, parent: str | None,
                          alert: Mapping[str, Any]) -> None:
        # Threads are a convenience: a failure here never fails the delivery.
        uid = self._uid(alert)
        if uid is None:
            return
        key = thread_key(self.stream_key, channel, uid)
        ttl = self.settings.slack_thread_ttl_seconds
        if parent is None:
            await self.redis.set(key, ts, ex=ttl, nx=True)
            return
        await self.redis.expire(key, ttl)
        try:
            await self.client.update_message(channel, parent,
                                             build_message(alert, note=PARENT_NOTE))
        except SlackAPIError as exc:
            log.warning("could not update the thread parent %s in %s: %s", parent, channel, exc)

    # --- the operator's view -----------------------------------------------------

    async def dead_letters(self, count: int = 100) -> list[dict]:
        """The oldest ``count`` dead letters, decoded (the alert as a dict)."""
        return [decode_dead_letter(i, f)
                for i, f in await self.redis.xrange(self.dead_key, count=count)]

    async def redrive(self, dead_id: str) -> list[RouteOutcome] | None:
        """Deliver a dead-lettered alert again, now; ``None`` if there is no such entry.

        Routes that were posted before are skipped (idempotency record); the
        dead letter is deleted when every route succeeded, and kept otherwise.
        """
        try:
            entries = await self.redis.xrange(self.dead_key, min=dead_id, max=dead_id)
        except ResponseError:  # not a stream id at all
            return None
        if not entries:
            return None
        alert = json.loads(entries[0][1][b"alert"])
        outcomes = list(await asyncio.gather(
            *(self.deliver_route(alert, route) for route in slack_routes(alert))))
        if all(o.status in (SENT, SKIPPED) for o in outcomes):
            await self.redis.xdel(self.dead_key, dead_id)
            log.info("re-drove dead letter %s (alert %s)", dead_id, alert.get("id"))
        return outcomes


def decode_dead_letter(entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> dict:
    """A dead-letter stream entry as JSON-ready data."""
    text = {k.decode(): v.decode() for k, v in fields.items()}
    return {
        "id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        "alert": json.loads(text.get("alert", "{}")),
        "stream_id": text.get("stream_id", ""),
        "reason": text.get("reason", ""),
        "errors": json.loads(text.get("errors", "[]")),
        "attempts": int(text.get("attempts", 0)),
        "consumer": text.get("consumer", ""),
        "failed_at": text.get("failed_at", ""),
    }
