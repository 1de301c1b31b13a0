"""The WebSocket hub: who is connected, what each may see and wants, and fan-out.

Transport-agnostic: a connection is reached only through ``Transport``
(``send_text`` / ``close``), so the ASGI endpoint of today and a different
server tomorrow plug in the same way.

Design for fan-out to many connections (thousands of connections per process):

- each alert frame is encoded once per broadcast and the same ``str`` object
  is queued for every recipient;
- an index principal -> connections means a broadcast only looks at
  connections whose token principals intersect the alert's audience;
- topic patterns are compiled once, when subscribed;
- every connection has a bounded queue drained by its own writer task, so a
  slow client never blocks a broadcast; when its queue is full it is cut off
  (close 1013) instead of growing memory without bound.

History (``subscribe`` with ``since``): while a connection's replay reads the
stream, live alerts for it are held back; the replay remembers up to where
it read (the watermark) and which topics it covered, so a live alert it
already sent is not sent again, whether it was held or arrives later (a
replica whose reader lags behind the replay).
"""

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from .auth import AuthError, Identity
from .history import StreamHistory
from .models import (
    Ping,
    ProtocolError,
    Refresh,
    Subscribe,
    Unsubscribe,
    alert_frame,
    encode_frame,
    error_frame,
    parse_client_message,
    pong_frame,
    refreshed_frame,
    routed_to_websocket,
    subscribed_frame,
    unsubscribed_frame,
    visible_to,
    welcome_frame,
)
from .monitoring import WEBSOCKET, Metrics
from .rate_limit import Rate, TokenBucket
from .stream_ids import StreamPosition, parse_stream_id

import asyncio
import logging
import time
import uuid


log = logging.getLogger(__name__)

# Close codes of the public contract: 4401 auth, 4403 origin; 1013 and 1001 are RFC 6455's
# "try again later" and "going away".
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_TOO_MANY = 4429  # like HTTP 429: back off, then try again

# Disconnect codes meaning the client sent no close frame (RFC 6455 7.1.5).
NO_CLOSE_FRAME = frozenset({1005, 1006})

# How long a close handshake may take before we give up on a peer.
CLOSE_TIMEOUT_SECONDS = 5.0

# A queued frame: its text, and the XADD time in ms for alerts (None for
# replies), so the writer can measure publish -> write latency.
QueueItem = tuple[str, int | None]


class Transport(Protocol):
    """What the hub needs from a WebSocket implementation."""

    async def send_text(self, data: str) -> None:
        """Write one text frame; may wait for the socket to drain; raises when the peer is gone."""

    async def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code``; a no-op on a closed connection."""


# --- topics -----------------------------------------------------------------

WILDCARD = "*"

# A compiled pattern: one entry per dotted segment, None where the pattern has "*".
CompiledPattern = tuple[str | None, ...]


def compile_topic_pattern(pattern: str) -> CompiledPattern:
    """Split a (validated) pattern into segments, ``*`` becoming ``None``."""
    return tuple(None if part == WILDCARD else part for part in pattern.split("."))


def pattern_matches(compiled: CompiledPattern, segments: tuple[str, ...]) -> bool:
    """Whether a compiled pattern matches a topic already split into segments.

    ``*`` matches exactly one segment: ``workflow.*`` matches ``workflow.publish``
    but neither ``workflow`` nor ``workflow.publish.extra``.
    """
    if len(compiled) != len(segments):
        return False
    for expected, actual in zip(compiled, segments):
        if expected is not None and expected != actual:
            return False
    return True


def topic_matches(pattern: str, topic: str) -> bool:
    """Convenience form of ``pattern_matches`` for one pattern and one topic."""
    return pattern_matches(compile_topic_pattern(pattern), tuple(topic.split(".")))


class Subscriptions:
    """The topic patterns of one connection, compiled once.

    Exact topics go to a set (one hash lookup per broadcast); only patterns
    with a wildcard are matched segment by segment.
    """

    __slots__ = ("_order", "_exact", "_wildcards")

    def __init__(self):
        self._order: dict[str, None] = {}  # insertion-ordered set, for stable replies
        self._exact: set[str] = set()
        self._wildcards: dict[str, CompiledPattern] = {}

    def add(self, patterns: Iterable[str]) -> None:
        """Subscribe to ``patterns``; already present ones are kept as they are."""
        for pattern in patterns:
            if pattern in self._order:
                continue
            self._order[pattern] = None
            compiled = compile_topic_pattern(pattern)
            if None in compiled:
                self._wildcards[pattern] = compiled
            else:
                self._exact.add(pattern)

    def remove(self, patterns: Iterable[str]) -> None:
        """Unsubscribe from ``patterns``; unknown ones are ignored."""
        for pattern in patterns:
            self._order.pop(pattern, None)
            self._exact.discard(pattern)
            self._wildcards.pop(pattern, None)

    def topics(self) -> list[str]:
        """All patterns, in the order they were first subscribed."""
        return list(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, pattern: str) -> bool:
        return pattern in self._order

    def matches(self, topic: str, segments: tuple[str, ...]) -> bool:
        """Whether any pattern matches ``topic`` (given also split into ``segments``)."""
        if topic in self._exact:
            return True
        for compiled in self._wildcards.values():
            if pattern_matches(compiled, segments):
                return True
        return False


# --- limits -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HubLimits:
    """What one connection and one user may do (settings ``EDUHUB_WS_*``)."""

    max_subscriptions: int = 100
    max_connections_per_user: int = 10
    message_rate: Rate = field(default_factory=lambda: Rate(10.0, 10))
    rate_limit_strikes: int = 10  # refused messages in a row before closing with 4429


class TooManyConnections(Exception):
    """The user already holds ``max_connections_per_user`` connections here."""


def refuse_every_token(token: str) -> Identity:
    """The token verifier of a hub given none: ``refresh`` is then always refused."""
    raise AuthError("invalid", "this hub verifies no tokens")


# --- connections ------------------------------------------------------------


class Connection:
    """One authenticated client: identity, subscriptions, send queue and writer.

    Created and owned by ``Hub.connect``; callers use the hub's methods.
    """

    __slots__ = (
        "id", "identity", "subscriptions", "_transport", "_queue", "_writer",
        "_metrics", "_on_dead", "_closed", "_space", "expiry", "held", "replayed",
        "bucket", "strikes",
    )

    def __init__(self, transport: Transport, identity: Identity, queue_size: int,
                 metrics: Metrics, on_dead, message_rate: Rate):
        self.id = uuid.uuid4().hex
        self.identity = identity
        self.subscriptions = Subscriptions()
        self._transport = transport
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue(maxsize=queue_size)
        self._metrics = metrics
        self._on_dead = on_dead
        self._closed = False
        self._writer: asyncio.Task | None = None
        self._space: asyncio.Future | None = None  # awaited by put() while the queue is full
        self.expiry: asyncio.TimerHandle | None = None
        # While a replay runs: live alerts held back, as (stream id, alert, item).
        self.held: deque[tuple[str, dict, QueueItem]] | None = None
        # After a replay: (watermark, topics it covered) until live delivery passes the watermark.
        self.replayed: tuple[StreamPosition, Subscriptions] | None = None
        self.bucket = TokenBucket(message_rate, time.monotonic())  # client message rate
        self.strikes = 0  # client messages refused in a row

    @property
    def principals(self) -> frozenset[str]:
        return self.identity.principals

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")

    def offer(self, item: QueueItem) -> bool:
        """Queue a frame without waiting; False when the queue is full (a slow consumer)."""
        if self._closed:
            return True  # being closed already: nothing to count twice
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def put(self, item: QueueItem) -> bool:
        """Queue a frame, waiting while the queue is half full; False once the connection closes.

        For replays: they go at the pace the client reads instead of cutting
        it off, and leave half the queue free, so live alerts arriving right
        after a replay do not find it full.
        """
        queue = self._queue
        while not self._closed:
            if queue.qsize() < max(1, queue.maxsize // 2):
                queue.put_nowait(item)
                return True
            self._space = asyncio.get_running_loop().create_future()
            await self._space
        return False

    def _wake_putter(self) -> None:
        space, self._space = self._space, None
        if space is not None and not space.done():
            space.set_result(None)

    def already_replayed(self, stream_id: str, topic: str, segments: tuple[str, ...]) -> bool:
        """Whether the last replay sent this live alert already.

        Live alerts arrive in stream order, so once one is past the watermark
        the replay is forgotten.
        """
        if self.replayed is None:
            return False
        watermark, topics = self.replayed
        if parse_stream_id(stream_id) > watermark:
            self.replayed = None
            return False
        return topics.matches(topic, segments)

    async def _write_loop(self) -> None:
        # The only coroutine that writes to the transport, so frames keep
        # their order and the transport never sees two concurrent sends.
        queue, transport, metrics = self._queue, self._transport, self._metrics
        try:
            while True:
                text, published_ms = await queue.get()
                if self._space is not None:
                    self._wake_putter()
                await transport.send_text(text)
                if published_ms is not None:
                    metrics.observe_delivery(published_ms)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The peer went away mid-write. Stop queueing for it at once; the
            # endpoint sees the disconnect and finishes the cleanup.
            log.debug("connection %s: write failed: %r", self.id, exc)
            self.begin_close()  # nothing will drain the queue any more
            self._on_dead(self)

    def begin_close(self) -> bool:
        """Mark the connection as closing, synchronously; False if it already was.

        From then on frames offered to it are dropped silently, so a client
        cut off as a slow consumer is counted once, not once per frame.
        """
        if self._closed:
            return False
        self._closed = True
        if self.expiry is not None:
            self.expiry.cancel()
        self._wake_putter()
        return True

    async def close(self, code: int, reason: str = "") -> None:
        """Stop writing and close the transport with ``code``; idempotent."""
        if self.begin_close():
            await self.finish_close(code, reason)

    async def finish_close(self, code: int, reason: str) -> None:
        """The asynchronous half of ``close``, after ``begin_close`` returned True."""
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            # asyncio.wait, not `await writer`: the writer's CancelledError is
            # expected, while our own cancellation must still propagate.
            await asyncio.wait([writer])
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self._transport.close(code, reason)
        except Exception as exc:  # closed already, or a peer that never drains
            log.debug("connection %s: close(%s) failed: %r", self.id, code, exc)


# --- the hub ----------------------------------------------------------------


class Hub:
    """Registry of connections and fan-out of alerts to them."""

    def __init__(
        self, metrics: Metrics, *, send_queue_size: int = 256, heartbeat_seconds: int = 25,
        history: StreamHistory | None = None,
        verify_token: Callable[[str], Identity] | None = None,
        limits: HubLimits = HubLimits(),
    ):
        self.metrics = metrics
        self.limits = limits
        self.send_queue_size = send_queue_size
        self.heartbeat_seconds = heartbeat_seconds
        self.history = history  # set by the app once Redis is there; needed for `since`
        # Turns a token into an Identity or raises AuthError, for `refresh`.
        self.verify_token = verify_token if verify_token is not None else refuse_every_token
        self.connections: dict[str, Connection] = {}
        self._by_principal: dict[str, set[Connection]] = {}
        self._per_user: dict[str, int] = {}  # sub -> open connections
        self._background: set[asyncio.Task] = set()

    # registration

    def connect(self, transport: Transport, identity: Identity) -> Connection:
        """Register an accepted, authenticated connection and greet it.

        The connection receives no alerts until it subscribes. It is closed
        with 4401 when the token's ``exp`` passes. Raises ``TooManyConnections``
        (and registers nothing) when the user is at the per-user limit.
        """
        open_for_user = self._per_user.get(identity.sub, 0)
        if open_for_user >= self.limits.max_connections_per_user:
            self.metrics.rate_limited.labels(scope="connections").inc()
            raise TooManyConnections(identity.sub)
        conn = Connection(transport, identity, self.send_queue_size, self.metrics,
                          self._unregister, self.limits.message_rate)
        self.connections[conn.id] = conn
        self._per_user[identity.sub] = open_for_user + 1
        self._index(conn)
        self.metrics.websocket_connections.inc()
        conn.start()
        self._send(conn, welcome_frame(conn.id, identity.sub, self.heartbeat_seconds))
        self._arm_expiry(conn)
        return conn

    def _arm_expiry(self, conn: Connection) -> None:
        if conn.expiry is not None:
            conn.expiry.cancel()
        delay = max(0.0, conn.identity.expires_at - time.time())
        conn.expiry = asyncio.get_running_loop().call_later(
            delay, self.drop, conn, CLOSE_UNAUTHORIZED, "token expired"
        )

    def _index(self, conn: Connection) -> None:
        for principal in conn.principals:
            self._by_principal.setdefault(principal, set()).add(conn)

    def _unindex(self, conn: Connection) -> None:
        for principal in conn.principals:
            members = self._by_principal.get(principal)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self._by_principal[principal]

    def _unregister(self, conn: Connection) -> None:
        # Idempotent: called on write failure, drop, disconnect and shutdown.
        if self.connections.pop(conn.id, None) is None:
            return
        sub = conn.identity.sub
        remaining = self._per_user[sub] - 1
        if remaining:
            self._per_user[sub] = remaining
        else:
            del self._per_user[sub]
        self._unindex(conn)
        self.metrics.websocket_connections.dec()

    async def disconnect(
        self, conn: Connection, code: int = CLOSE_NORMAL, reason: str = ""
    ) -> None:
        """Forget ``conn`` and close it with ``code`` (a no-op if closed already)."""
        self._unregister(conn)
        await conn.close(code, reason)

    def peer_gone(self, conn: Connection, code: int | None) -> None:
        """The client's side of ``conn`` ended with ``code``; call before ``disconnect``.

        1005/1006 mean no close frame came: the server dropped a peer that
        missed a heartbeat pong, or the TCP connection broke. Counted as a
        dead peer unless the server was closing the connection itself.
        """
        if code in NO_CLOSE_FRAME and not conn.closed:
            log.info("connection %s (%s): peer gone without closing (%s)",
                     conn.id, conn.identity.sub, code)
            self.metrics.dead_peers.inc()

    def drop(self, conn: Connection, code: int, reason: str) -> None:
        """Like ``disconnect`` but callable from synchronous code (timers, broadcast).

        The connection stops receiving at once; the close handshake runs in
        the background.
        """
        self._unregister(conn)
        if not conn.begin_close():
            return
        task = asyncio.get_running_loop().create_task(conn.finish_close(code, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close_all(
        self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Close every connection (shutdown)."""
        conns = list(self.connections.values())
        for conn in conns:
            self._unregister(conn)
        await asyncio.gather(*(conn.close(code, reason) for conn in conns))
        if self._background:
            await asyncio.wait(list(self._background))

    # client messages

    def _send(self, conn: Connection, frame: dict) -> None:
        if not conn.offer((encode_frame(frame), None)):
            self._slow_consumer(conn)

    def _slow_consumer(self, conn: Connection) -> None:
        log.info("connection %s (%s): send queue full, closing", conn.id, conn.identity.sub)
        self.metrics.failure(WEBSOCKET, "slow_consumer")
        self.drop(conn, CLOSE_TRY_AGAIN_LATER, "try again later")

    async def handle_text(self, conn: Connection, text: str) -> None:
        """Act on one client text frame and queue the answer.

        Malformed or unknown messages are answered with an ``error`` frame; the
        connection stays open.
        """
        if not self._admit(conn):
            return
        try:
            message = parse_client_message(text)
        except ProtocolError as exc:
            self._send(conn, error_frame(exc.code, exc.message))
            return
        if isinstance(message, Subscribe):
            await self._subscribe(conn, message)
        elif isinstance(message, Refresh):
            self._refresh(conn, message.token)
        elif isinstance(message, Unsubscribe):
            conn.subscriptions.remove(message.topics)
            self._send(conn, unsubscribed_frame(conn.subscriptions.topics()))
        else:
            assert isinstance(message, Ping)  # the last of CLIENT_MESSAGE_TYPES
            self._send(conn, pong_frame())

    def _admit(self, conn: Connection) -> bool:
        """Apply the client message rate limit: False when this message is refused.

        A refused message is answered with ``rate_limited``; after
        ``rate_limit_strikes`` refusals in a row the connection is closed
        with 4429 instead.
        """
        if conn.bucket.take(time.monotonic()):
            conn.strikes = 0
            return True
        self.metrics.rate_limited.labels(scope=WEBSOCKET).inc()
        conn.strikes += 1
        if conn.strikes > self.limits.rate_limit_strikes:
            self.drop(conn, CLOSE_TOO_MANY, "rate limited")
        else:
            rate = self.limits.message_rate
            self._send(conn, error_frame(
                "rate_limited",
                f"at most {rate.per_second:g} messages per second (bursts of {rate.burst})",
            ))
        return False

    async def _subscribe(self, conn: Connection, message: Subscribe) -> None:
        new = {topic for topic in message.topics if topic not in conn.subscriptions}
        limit = self.limits.max_subscriptions
        if len(conn.subscriptions) + len(new) > limit:
            self._send(conn, error_frame(
                "too_many_subscriptions",
                f"topics: at most {limit} subscriptions per connection "
                f"(subscribed to {len(conn.subscriptions)}, asked for {len(new)} more)",
            ))
            return
        if message.since is None:
            conn.subscriptions.add(message.topics)
            self._send(conn, subscribed_frame(conn.subscriptions.topics()))
            return
        # Hold live alerts back from now on: the replay goes first.
        conn.held = deque()
        conn.subscriptions.add(message.topics)
        covered = Subscriptions()
        covered.add(message.topics)
        since = parse_stream_id(message.since)
        recovered, last = await self._replay(conn, since, covered)
        conn.replayed = (max(since, last), covered)
        reply = subscribed_frame(conn.subscriptions.topics(), recovered=recovered)
        if await conn.put((encode_frame(reply), None)):
            await self._release_held(conn)
        conn.held = None

    async def _replay(
        self, conn: Connection, since: StreamPosition, covered: Subscriptions
    ) -> tuple[bool, StreamPosition]:
        """Send ``conn`` the alerts after ``since`` it may see and that match ``covered``.

        Returns whether the history was complete, and the position read up to.
        A Redis failure ends the replay as incomplete: live delivery goes on.
        """
        complete, last = True, since
        try:
            async for page in self.history.pages_after(since):
                complete = complete and page.complete
                for stream_id, alert in page.alerts:
                    if not self._replayable(conn, alert, covered):
                        continue
                    if not await conn.put((encode_frame(alert_frame(stream_id, alert)), None)):
                        return False, last
                    self.metrics.replayed.inc()
                last = page.last or last
        except Exception as exc:
            log.warning("connection %s: replay after %s failed: %r", conn.id, since, exc)
            return False, last
        return complete, last

    @staticmethod
    def _replayable(conn: Connection, alert: dict, covered: Subscriptions) -> bool:
        topic = alert["topic"]
        return (
            routed_to_websocket(alert)
            and visible_to(alert, conn.principals)
            and covered.matches(topic, tuple(topic.split(".")))
        )

    async def _release_held(self, conn: Connection) -> None:
        # Broadcasts keep appending while we wait for queue space, so drain
        # until the deque is empty; the caller then ends holding without an
        # await in between, which keeps stream order across the seam.
        held = conn.held
        while held:
            stream_id, alert, item = held.popleft()
            topic = alert["topic"]
            if conn.already_replayed(stream_id, topic, tuple(topic.split("."))):
                continue
            if not await conn.put(item):
                return

    def _refresh(self, conn: Connection, token: str) -> None:
        """Replace the identity with a fresh token's for the same user.

        The principals may have changed (a new group, a role removed): the
        connection is re-indexed, so the next broadcast already uses them. A
        refused token changes nothing, and the current expiry still applies.
        """
        if conn.closed:  # being closed: must not be indexed again
            return
        try:
            identity = self.verify_token(token)
        except AuthError as exc:
            self._send(conn, error_frame("unauthorized", f"token: {exc.reason}"))
            return
        if identity.sub != conn.identity.sub:
            self._send(conn, error_frame("unauthorized", "token: issued for another user"))
            return
        self._unindex(conn)
        conn.identity = identity
        self._index(conn)
        self._arm_expiry(conn)
        expires = datetime.fromtimestamp(identity.expires_at, timezone.utc)
        self._send(conn, refreshed_frame(expires.isoformat().replace("+00:00", "Z")))

    def handle_binary(self, conn: Connection) -> None:
        """Binary frames are not part of the protocol: answer with an error."""
        if self._admit(conn):
            self._send(conn, error_frame("bad_request", "send JSON text frames, not binary"))

    # fan-out

    def recipients(self, stream_id: str, audience: Iterable[str], topic: str) -> list[Connection]:
        """Connections allowed to see (audience) and interested in (topic) an alert,
        except those a replay has sent it to already."""
        candidates: set[Connection] = set()
        for principal in audience:
            members = self._by_principal.get(principal)
            if members:
                candidates.update(members)
        if not candidates:
            return []
        segments = tuple(topic.split("."))
        return [
            conn for conn in candidates
            if conn.subscriptions.matches(topic, segments)
            and not conn.already_replayed(stream_id, topic, segments)
        ]

    def broadcast(self, stream_id: str, alert: dict) -> int:
        """Queue ``alert`` (valid, read at ``stream_id``) for every recipient.

        Never waits: returns the number of connections it was queued for.
        Connections whose queue is full are closed with 1013.
        """
        recipients = self.recipients(stream_id, alert["audience"], alert["topic"])
        if not recipients:
            return 0
        frame = encode_frame(alert_frame(stream_id, alert))
        item: QueueItem = (frame, stream_timestamp_ms(stream_id))
        queued = 0
        for conn in recipients:
            if conn.held is not None:
                # A replay is running: keep the alert for after it, within the same bound.
                if len(conn.held) < self.send_queue_size:
                    conn.held.append((stream_id, alert, item))
                    queued += 1
                    continue
            elif conn.offer(item):
                queued += 1
                continue
            self._slow_consumer(conn)
        return queued


def stream_timestamp_ms(stream_id: str) -> int | None:
    """The millisecond timestamp of a Redis stream id (``<ms>-<seq>``), i.e. its XADD time."""
    head, _, _ = stream_id.partition("-")
    return int(head) if head.isdigit() else None
