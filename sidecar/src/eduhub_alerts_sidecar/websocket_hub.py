"""The WebSocket hub: who is connected, what each may see and wants, and fan-out.

Connections (``connection.py``) are reached only through a ``Transport``, so
the hub does not depend on the server (``ws_protocol.py`` is the one that
serves it); topic matching is in ``topics.py``.

Design for fan-out to many connections (thousands of connections per process):

- each alert is encoded once per broadcast, down to the WebSocket frame, and
  the same ``bytes`` object is written to every recipient;
- recipients are the intersection of two precomputed sets: connections
  whose token principals meet the alert's audience (an index principal ->
  connections) and connections subscribed to a pattern that matches its
  topic (an index pattern -> connections, ``topics.TopicIndex``); both are
  kept up to date on connect, subscribe, refresh and disconnect;
- nothing in the hub waits: a broadcast writes to each socket's transport at
  once, so a slow client never blocks it; a client whose transport stays
  paused for ``send_queue_size`` frames is cut off (close 1013) instead of
  growing memory without bound. Only replays (``subscribe`` with ``since``)
  are tasks, and they wait for the client to read.

History (``subscribe`` with ``since``): a replay reads the stream from
``since`` to its end and leaves a mark (``connection.ReplayMark``): which
topics it covers, and up to where. Live alerts on those topics are left to
the replay while it reads (it reads at least as far as the newest of them),
and are not sent again afterwards when they arrive late (a replica whose
reader lags behind the replay); live alerts on the connection's other topics
are held back until the replay ends. So nothing is missed or sent twice at
the seam, and nothing but alerts the replay does not send is held.
"""

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .auth import AuthError, Identity
from .connection import Connection, ReplayMark, Transport, text_frame
from .history import HistoryPage, StreamHistory
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
from .rate_limit import Rate
from .stream_ids import ORIGIN, StreamPosition, format_stream_id, parse_stream_id
from .topics import Subscriptions, TopicIndex

import asyncio
import logging
import time


log = logging.getLogger(__name__)

# Close codes of the public contract: 4401 auth, 4403 origin; 1013 and 1001 are RFC 6455's
# "try again later" and "going away".
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_TOO_MANY = 4429  # like HTTP 429: back off, then try again

# The connection ended with no close frame from either side (RFC 6455 7.1.5).
CLOSE_ABNORMAL = 1006
# Client messages (and their characters) that may wait for a running replay;
# more are refused like messages over the rate limit.
MAX_WAITING_MESSAGES = 16
MAX_WAITING_CHARS = 65_536
# A replay that cannot read Redis tries again after this, doubling up to the
# maximum, and gives up (answering "not recovered") once Redis has failed for
# this long in a row.
REPLAY_RETRY_SECONDS = 0.25
REPLAY_RETRY_MAX_SECONDS = 5.0
REPLAY_GIVE_UP_SECONDS = 30.0
# Reads up to the live alerts a replay took over, while more keep coming.
REPLAY_CATCH_UP_READS = 8
# Replays a connection remembers (for live alerts a lagging reader offers again).
MAX_REPLAY_MARKS = 8


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
        self._by_topic = TopicIndex()
        self._per_user: dict[str, int] = {}  # sub -> open connections
        self._live_position = ORIGIN  # of the last alert broadcast

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
        conn = Connection(transport, identity, self.send_queue_size, self.limits.message_rate)
        self.connections[conn.id] = conn
        self._per_user[identity.sub] = open_for_user + 1
        self._index(conn)
        self.metrics.websocket_connections.inc()
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
        # Idempotent: called on drop, disconnect and shutdown.
        if self.connections.pop(conn.id, None) is None:
            return
        sub = conn.identity.sub
        remaining = self._per_user[sub] - 1
        if remaining:
            self._per_user[sub] = remaining
        else:
            del self._per_user[sub]
        self._unindex(conn)
        for pattern in conn.subscriptions.topics():
            self._by_topic.discard(pattern, conn)
        self.metrics.websocket_connections.dec()

    def disconnect(self, conn: Connection) -> None:
        """The connection has ended (its socket is closed): forget it."""
        self._unregister(conn)
        conn.close(CLOSE_GOING_AWAY)  # stops a replay, cancels the expiry timer

    def peer_gone(self, conn: Connection, code: int) -> None:
        """The client's side of ``conn`` ended with ``code``; call before ``disconnect``.

        1006 means no close frame came: the server dropped a peer that missed
        a heartbeat pong, or the TCP connection broke. Counted as a dead peer
        unless the server was closing the connection itself.
        """
        if code == CLOSE_ABNORMAL and not conn.closed:
            log.info("connection %s (%s): peer gone without closing (%s)",
                     conn.id, conn.identity.sub, code)
            self.metrics.dead_peers.inc()

    def drop(self, conn: Connection, code: int, reason: str) -> None:
        """Forget ``conn`` and start closing it with ``code`` (a no-op if closed already).

        The connection receives nothing more; the transport finishes the
        closing handshake.
        """
        self._unregister(conn)
        conn.close(code, reason)

    def close_all(self, code: int = CLOSE_SERVICE_RESTART, reason: str = "service restart") -> None:
        """Close every connection (shutdown); clients reconnect and resume with ``since``."""
        for conn in list(self.connections.values()):
            self.drop(conn, code, reason)

    # client messages

    def _send(self, conn: Connection, frame: dict) -> None:
        if not conn.send(text_frame(encode_frame(frame))):
            self._slow_consumer(conn)

    def _slow_consumer(self, conn: Connection) -> None:
        log.info("connection %s (%s): not reading, closing", conn.id, conn.identity.sub)
        self.metrics.failure(WEBSOCKET, "slow_consumer")
        self.drop(conn, CLOSE_TRY_AGAIN_LATER, "try again later")

    def handle_text(self, conn: Connection, text: str) -> None:
        """Act on one client text frame and send the answer.

        Malformed or unknown messages are answered with an ``error`` frame; the
        connection stays open. While a replay runs, up to
        ``MAX_WAITING_MESSAGES`` messages wait for it, so answers keep the
        order of the questions.
        """
        if conn.closed or not self._admit(conn, text):
            return  # a closed connection is unregistered: nothing may index it again
        if conn.replay is None:
            self._dispatch(conn, text)
        else:
            conn.inbox.append(text)

    def _dispatch(self, conn: Connection, text: str) -> None:
        try:
            message = parse_client_message(text)
        except ProtocolError as exc:
            self._send(conn, error_frame(exc.code, exc.message))
            return
        if isinstance(message, Subscribe):
            self._subscribe(conn, message)
        elif isinstance(message, Refresh):
            self._refresh(conn, message.token)
        elif isinstance(message, Unsubscribe):
            for pattern in conn.subscriptions.remove(message.topics):
                self._by_topic.discard(pattern, conn)
            self._send(conn, unsubscribed_frame(conn.subscriptions.topics()))
        else:
            assert isinstance(message, Ping)  # the last of CLIENT_MESSAGE_TYPES
            self._send(conn, pong_frame())

    def _admit(self, conn: Connection, text: str | None = None) -> bool:
        """Apply the client message rate limit and, to a ``text`` message that
        would wait for a replay, the bound on waiting messages: False when
        this message is refused.

        A refused message is answered with ``rate_limited``; after
        ``rate_limit_strikes`` refusals in a row the connection is closed
        with 4429 instead.
        """
        why = self._refusal(conn, text)
        if why is None:
            conn.strikes = 0
            return True
        self.metrics.rate_limited.labels(scope=WEBSOCKET).inc()
        conn.strikes += 1
        if conn.strikes > self.limits.rate_limit_strikes:
            self.drop(conn, CLOSE_TOO_MANY, "rate limited")
        else:
            self._send(conn, error_frame("rate_limited", why))
        return False

    def _refusal(self, conn: Connection, text: str | None) -> str | None:
        """Why this client message is refused, or None."""
        if not conn.bucket.take(time.monotonic()):
            rate = self.limits.message_rate
            return f"at most {rate.per_second:g} messages per second (bursts of {rate.burst})"
        if text is not None and conn.replay is not None and (
                len(conn.inbox) >= MAX_WAITING_MESSAGES
                or sum(map(len, conn.inbox)) + len(text) > MAX_WAITING_CHARS):
            return (f"at most {MAX_WAITING_MESSAGES} messages ({MAX_WAITING_CHARS} characters) "
                    "may wait while history is replayed")
        return None

    def _subscribe(self, conn: Connection, message: Subscribe) -> None:
        new = {topic for topic in message.topics if topic not in conn.subscriptions}
        limit = self.limits.max_subscriptions
        if len(conn.subscriptions) + len(new) > limit:
            self._send(conn, error_frame(
                "too_many_subscriptions",
                f"topics: at most {limit} subscriptions per connection "
                f"(subscribed to {len(conn.subscriptions)}, asked for {len(new)} more)",
            ))
            return
        for pattern in conn.subscriptions.add(message.topics):
            self._by_topic.add(pattern, conn)
        if message.since is None:
            self._send(conn, subscribed_frame(conn.subscriptions.topics()))
            return
        # From now on the replay sends the live alerts on these topics, and
        # live alerts on the others are held until it is done.
        covered = Subscriptions()
        covered.add(message.topics)
        mark = ReplayMark(parse_stream_id(message.since), covered)
        # Live delivery reads the stream in order: a mark it has passed covers
        # nothing any more. Of the others, the newest few are kept.
        kept = [old for old in conn.marks or () if old.upto > self._live_position]
        while len(kept) >= MAX_REPLAY_MARKS:  # fewer, coarser marks: never skips what was not sent
            kept[:2] = [kept[0].merged(kept[1], conn.subscriptions)]
        conn.marks = [*kept, mark]
        conn.held = deque()
        conn.inbox = deque()
        conn.replay = asyncio.get_running_loop().create_task(
            self._replay_then_go_live(conn, mark), name=f"ws-replay-{conn.id}")

    async def _replay_then_go_live(self, conn: Connection, mark: ReplayMark) -> None:
        try:
            recovered = await self._replay(conn, mark)
            reply = subscribed_frame(conn.subscriptions.topics(), recovered=recovered)
            if await self._put(conn, text_frame(encode_frame(reply))):
                await self._release_held(conn)
        finally:
            # No await from here on: the next broadcast already goes out live,
            # which keeps stream order across the seam.
            conn.held = None
            conn.replay = None
        inbox, conn.inbox = conn.inbox, None
        while inbox and conn.replay is None and not conn.closed:
            self._dispatch(conn, inbox.popleft())
        if inbox and conn.replay is not None:  # another replay: the rest waits for it
            conn.inbox.extendleft(reversed(inbox))

    @staticmethod
    async def _put(conn: Connection, frame: bytes) -> bool:
        """Send ``frame`` once the client has read what it had; False once it closed."""
        return await conn.drained() and conn.send(frame)

    async def _replay(self, conn: Connection, mark: ReplayMark) -> bool:
        """Send ``conn`` the alerts after ``since`` it may see on ``mark.topics``:
        to the end of the stream, then the live ones it took over meanwhile.

        Returns whether the history was complete.
        """
        try:
            complete = await self._replay_range(conn, mark)
            # Live alerts that came in while the last page was on its way from
            # Redis are owed: read up to them, while more keep coming.
            for _ in range(REPLAY_CATCH_UP_READS):
                if complete is None or mark.owed <= mark.upto:
                    break
                complete = await self._catch_up(conn, mark, complete)
        finally:
            # No await since the last read: a live alert on these topics came
            # before this (and is owed) or comes after (and is held).
            mark.reading = False
        if complete is not None and mark.owed > mark.upto:  # a busy stream: one more read
            complete = await self._catch_up(conn, mark, complete)
        return bool(complete)

    async def _catch_up(self, conn: Connection, mark: ReplayMark, complete: bool) -> bool | None:
        """Read up to ``mark.owed``; None when the client closed or Redis stayed away."""
        owed = mark.owed
        found = await self._replay_range(conn, mark, until=owed)
        if found is None:
            return None
        if mark.upto < owed:  # trimmed away before it could be read
            mark.upto = owed
            return False
        return complete and found

    async def _replay_range(self, conn: Connection, mark: ReplayMark,
                            until: StreamPosition | None = None) -> bool | None:
        """Send the replayable alerts after ``mark.upto`` (up to ``until``, else
        to the end of the stream), advancing ``mark.upto``; whether the history
        was complete, or None when the client closed or Redis stayed away.

        While Redis cannot be read the replay tries again, until it has failed
        for ``REPLAY_GIVE_UP_SECONDS`` in a row: the live alerts it took over
        are nowhere else.
        """
        loop = asyncio.get_running_loop()
        complete, failures, give_up_at = True, 0, None
        while True:
            try:
                async for page in self.history.pages_after(mark.upto, until):
                    failures, give_up_at = 0, None
                    complete = complete and page.complete
                    if not await self._replay_page(conn, mark, page):
                        return None
                return complete
            except Exception as exc:  # not CancelledError: a closed connection stops here
                failures += 1
                if give_up_at is None:
                    give_up_at = loop.time() + REPLAY_GIVE_UP_SECONDS
                elif loop.time() >= give_up_at:
                    log.warning("connection %s: replay after %s gave up after %d failures: %r",
                                conn.id, format_stream_id(mark.upto), failures, exc)
                    return None
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "connection %s: replay after %s failed (%r), trying again",
                        conn.id, format_stream_id(mark.upto), exc)
                await asyncio.sleep(min(REPLAY_RETRY_MAX_SECONDS,
                                        REPLAY_RETRY_SECONDS * 2 ** (failures - 1)))

    async def _replay_page(self, conn: Connection, mark: ReplayMark, page: HistoryPage) -> bool:
        """Send one page's replayable alerts; False once the client closed."""
        if page.newest is not None and mark.upto > page.newest:
            # `since` is beyond anything in the stream (a client clock running
            # ahead, another stream's id): cover nothing that is not there, or
            # live alerts up to it would be taken as sent.
            mark.upto = page.newest
        for stream_id, alert in page.alerts:
            if not self._replayable(conn, alert, mark.topics):
                continue
            if not await self._put(conn, text_frame(encode_frame(alert_frame(stream_id, alert)))):
                return False
            self.metrics.replayed.inc()
        if page.last is not None:
            mark.upto = page.last
        return True

    @staticmethod
    def _replayable(conn: Connection, alert: dict, covered: Subscriptions) -> bool:
        topic = alert["topic"]
        return (
            routed_to_websocket(alert)
            and visible_to(alert, conn.principals)
            and covered.matches(topic, tuple(topic.split(".")))
        )

    async def _release_held(self, conn: Connection) -> None:
        # Nothing held is something the replay sent (``recipients`` asked the
        # marks). Broadcasts keep appending while we wait for the client to
        # read, so drain until the deque is empty; the caller then ends
        # holding without an await in between, which keeps stream order.
        held = conn.held
        while held:
            _, _, frame = held.popleft()
            if not await self._put(conn, frame):
                return
            self.metrics.websocket_sent.inc()

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

    def pong_written(self, conn: Connection) -> None:
        """The WebSocket layer answered a client's ping on its own: while the
        client is not reading, that counts like any frame sent to it (so a
        ping flood from a client that reads nothing is cut off, not buffered)."""
        if not conn.closed and not conn.count_frame():
            self._slow_consumer(conn)

    def handle_binary(self, conn: Connection) -> None:
        """Binary frames are not part of the protocol: answer with an error."""
        if not conn.closed and self._admit(conn):
            self._send(conn, error_frame("bad_request", "send JSON text frames, not binary"))

    # fan-out

    def recipients(self, position: StreamPosition, audience: Iterable[str],
                   topic: str) -> list[Connection]:
        """Connections allowed to see (audience) and interested in (topic) the
        alert at stream ``position``, except those a replay sends it to."""
        segments = tuple(topic.split("."))
        interested = self._by_topic.interested(topic, segments)
        if not interested:
            return []
        by_principal = self._by_principal
        allowed = [by_principal[p] for p in audience if p in by_principal]
        if not allowed:
            return []
        visible = allowed[0] if len(allowed) == 1 else set().union(*allowed)
        return [
            conn for conn in visible & interested
            # Inline None check: the hot path skips the call for almost everyone.
            if conn.marks is None or not conn.replay_covers(position, topic, segments)
        ]

    def broadcast(self, stream_id: str, alert: dict) -> int:
        """Send ``alert`` (valid, read at ``stream_id``) to every recipient.

        Never waits: returns the number of connections it was written (or,
        during their replay, held) for. Clients too far behind are closed
        with 1013. The latency metric is observed once, when the last
        recipient's frame has been written.
        """
        # Parsed once per alert: after a mass reconnect every connection has a mark.
        self._live_position = position = parse_stream_id(stream_id)
        recipients = self.recipients(position, alert["audience"], alert["topic"])
        if not recipients:
            return 0
        frame = text_frame(encode_frame(alert_frame(stream_id, alert)))
        sent = held = 0
        for conn in recipients:
            if conn.held is not None:
                # A replay is running and does not send this one: keep it for
                # after the replay, within the same bound.
                if len(conn.held) < self.send_queue_size:
                    conn.held.append((stream_id, alert, frame))
                    held += 1
                    continue
            elif conn.send(frame):
                sent += 1
                continue
            self._slow_consumer(conn)
        self.metrics.observe_broadcast(stream_timestamp_ms(stream_id), sent)
        return sent + held


def stream_timestamp_ms(stream_id: str) -> int | None:
    """The millisecond timestamp of a Redis stream id (``<ms>-<seq>``), i.e. its XADD time."""
    head, _, _ = stream_id.partition("-")
    return int(head) if head.isdigit() else None
