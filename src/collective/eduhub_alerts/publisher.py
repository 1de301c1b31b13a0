"""Hand alerts to Redis after the Zope transaction commits, via the outbox.

``queue_alert`` writes the alert to the site's outbox inside the current
transaction and registers an after-commit hook. After a successful commit the
hook pushes the alert to the ``eduhub:alerts`` stream and removes it from the
outbox in a transaction of its own. An aborted transaction, or one retried
after a ConflictError, never committed its outbox entry and publishes nothing.

When Redis is unreachable the change still commits and the alert stays in the
outbox; the next commit that queues an alert, the periodic flush
(:mod:`.flusher`) or a site admin (``POST @alerts-outbox``) pushes it later.

Pushing is idempotent across processes: a Lua script sets a marker key per
alert id and appends to the stream only if the marker was not there, so
several Plone instances (ZEO or RelStorage clients) draining the same outbox
push each alert once. Consumers can still drop a repeat by the alert ``id``.
"""

from functools import cache
from ZODB.POSException import ConflictError

import json
import logging
import redis
import transaction

from .config import ALERTS_STREAM
from .config import DEDUPE_TTL
from .config import get_settings
from .outbox import Outbox


logger = logging.getLogger(__name__)

PUSHED_KEY_PREFIX = "eduhub:alerts:pushed:"
"""Marker keys, one per pushed alert id, expiring after a week."""

_QUEUE_KEY = "collective.eduhub_alerts.pending"
_PUSH_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[1])
end
return false
"""
_FLUSH_BATCH = 500
_CONFLICT_ATTEMPTS = 5


@cache
def _redis_client(url: str) -> redis.Redis:
    # One pool per URL, shared by all threads of the instance; short timeouts
    # so a Redis outage costs a request at most a couple of seconds.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_client() -> redis.Redis:
    return _redis_client(get_settings().redis_url)


def queue_alert(alert: dict, site) -> None:
    """Publish ``alert`` of ``site`` once the current transaction commits."""
    outbox = Outbox(site)
    backlog = outbox.has_pending()
    limit = get_settings().outbox_max_size
    if not outbox.add(alert, limit):
        logger.error(
            "alert %s (%s) dropped: the outbox holds %d undelivered alerts "
            "(EDUHUB_OUTBOX_MAX_SIZE); is Redis reachable?",
            alert["id"], alert["topic"], limit,
        )
        return
    # The transaction the site's connection takes part in (in a request,
    # the thread's own; in a script, whichever manager opened the site).
    txn = site._p_jar.transaction_manager.get()
    try:
        state = txn.data(_QUEUE_KEY)
    except KeyError:
        state = {"alerts": [], "site": site, "backlog": backlog}
        txn.set_data(_QUEUE_KEY, state)
        txn.addAfterCommitHook(_after_commit, args=(state,))
    state["alerts"].append(alert)


def _after_commit(committed: bool, state: dict) -> None:
    if not committed:
        return
    site = state["site"]
    db, path = site._p_jar.db(), site.getPhysicalPath()
    try:
        if state["backlog"]:
            # Redis was away earlier: take the chance to push the backlog
            # too, oldest first.
            flush(db, path)
        else:
            deliver(db, path, state["alerts"])
    except Exception:
        # The change is committed and the alerts are safe in the outbox;
        # the periodic flush will try again.
        logger.exception("pushing alerts after commit failed")


def push(alerts: list[dict]) -> int:
    """Append ``alerts`` to the stream, skipping any already pushed; return
    how many were appended. Raises ``redis.RedisError`` when Redis fails."""
    if not alerts:
        return 0
    settings = get_settings()
    client = redis_client()
    script = _push_script(client)
    pipe = client.pipeline(transaction=False)
    for alert in alerts:
        script(
            keys=[ALERTS_STREAM, PUSHED_KEY_PREFIX + alert["id"]],
            args=[json.dumps(alert, separators=(",", ":")), settings.stream_maxlen, DEDUPE_TTL],
            client=pipe,
        )
    return sum(1 for result in pipe.execute() if result)


@cache
def _push_script(client: redis.Redis):
    return client.register_script(_PUSH_ONCE)


def deliver(db, site_path, alerts: list[dict]) -> bool:
    """Push ``alerts`` and remove them from the site's outbox. False (and the
    alerts stay in the outbox) when Redis cannot be reached."""
    try:
        push(alerts)
    except redis.RedisError as exc:
        logger.warning(
            "Redis unreachable (%s): %d alert(s) kept in the outbox for a later push",
            exc, len(alerts),
        )
        return False
    ids = [alert["id"] for alert in alerts]
    in_own_transaction(db, site_path, lambda site: Outbox(site).remove(ids))
    return True


def flush(db, site_path) -> int:
    """Push everything in the site's outbox, oldest first; return how many
    alerts left the outbox. Stops at the first Redis failure."""
    delivered = 0
    while True:
        batch = in_own_transaction(
            db, site_path, lambda site: Outbox(site, create=False).pending(_FLUSH_BATCH)
        )
        if not batch or not deliver(db, site_path, batch):
            return delivered
        delivered += len(batch)


def in_own_transaction(db, site_path, func):
    """Run ``func(site)`` in a new connection and transaction of its own,
    retrying on ConflictError; return its result."""
    manager = transaction.TransactionManager()
    for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
        connection = db.open(transaction_manager=manager)
        try:
            manager.begin()
            site = connection.root()["Application"].unrestrictedTraverse(site_path)
            result = func(site)
            manager.commit()
            return result
        except ConflictError:
            manager.abort()
            if attempt == _CONFLICT_ATTEMPTS:
                raise
        finally:
            connection.close()
