"""Hand alerts to Redis only after the Zope transaction commits.

Alerts queued during a request are kept on the transaction. An after-commit
hook appends them to the ``eduhub:alerts`` stream when, and only when, the
commit succeeded: an aborted transaction, or one retried after a
ConflictError, leaves nothing behind, because its queue goes with it.
"""

from functools import cache

import json
import logging
import redis
import transaction

from .config import ALERTS_STREAM
from .config import get_settings


logger = logging.getLogger(__name__)

_QUEUE_KEY = "collective.eduhub_alerts.pending"


@cache
def _redis_client(url: str) -> redis.Redis:
    # One pool per URL, shared by all threads of the instance; short timeouts
    # so a Redis outage costs a request at most a couple of seconds.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_client() -> redis.Redis:
    return _redis_client(get_settings().redis_url)


def pending_alerts(txn=None) -> list[dict]:
    """The alerts queued on ``txn`` (the current transaction by default)."""
    txn = txn or transaction.get()
    try:
        return txn.data(_QUEUE_KEY)
    except KeyError:
        return []


def queue_alert(alert: dict) -> None:
    """Publish ``alert`` once the current transaction has committed."""
    txn = transaction.get()
    try:
        queue = txn.data(_QUEUE_KEY)
    except KeyError:
        queue = []
        txn.set_data(_QUEUE_KEY, queue)
        txn.addAfterCommitHook(_publish_after_commit, args=(queue,))
    queue.append(alert)


def _publish_after_commit(committed: bool, alerts: list[dict]) -> None:
    if not committed:
        return
    try:
        publish(alerts)
    except redis.RedisError:
        # The change itself is committed; never turn that into an error page.
        logger.exception("could not push %d alert(s) to Redis", len(alerts))


def publish(alerts: list[dict]) -> list[str]:
    """Append ``alerts`` to the stream in one round trip; return their ids."""
    settings = get_settings()
    pipe = redis_client().pipeline(transaction=False)
    for alert in alerts:
        pipe.xadd(
            ALERTS_STREAM,
            {"alert": json.dumps(alert, separators=(",", ":"))},
            maxlen=settings.stream_maxlen,
            approximate=True,
        )
    ids = [i.decode() if isinstance(i, bytes) else i for i in pipe.execute()]
    logger.debug("pushed alerts %s", ids)
    return ids
