"""The outbox: alerts written in the same transaction as the change.

An alert exists once its transaction commits, whatever happens to Redis
afterwards; it leaves the outbox only when it has been pushed. Entries are
kept in a BTree on the site's annotations, keyed by the alert's time-ordered
id, so draining in key order keeps the order in which alerts were made.
"""

from BTrees.OOBTree import OOBTree
from zope.annotation.interfaces import IAnnotations

import json


ANNOTATION_KEY = "collective.eduhub_alerts.outbox"

# Never removed: BTrees cannot resolve a conflict in which one transaction
# empties a bucket, and draining the outbox would empty it each time, so a
# save that raced with a drain would hit a ConflictError. With this key the
# bucket never empties and a concurrent insert and delete merge.
_KEEP = ""


class Outbox:
    """The pending alerts of one site."""

    def __init__(self, site, create: bool = True):
        annotations = IAnnotations(site)
        self._entries = annotations.get(ANNOTATION_KEY)
        if self._entries is None and create:
            self._entries = annotations[ANNOTATION_KEY] = OOBTree({_KEEP: ""})

    def __len__(self) -> int:
        return len(self._entries) - 1 if self._entries is not None else 0

    def has_pending(self) -> bool:
        """Whether anything waits; unlike len(), no walk over the tree."""
        if self._entries is None:
            return False
        return next(iter(self._entries.keys(min=_KEEP, excludemin=True)), None) is not None

    def add(self, alert: dict, limit: int) -> bool:
        """Store ``alert``; False when the outbox already holds ``limit``
        entries (Redis has been unreachable for long): the caller logs it,
        and the editor's change still commits."""
        # Counting walks the tree, so only when there is a backlog at all.
        if self.has_pending() and len(self) >= limit:
            return False
        # A JSON string, not nested persistent objects: one small record,
        # immutable once written.
        self._entries[alert["id"]] = json.dumps(alert, separators=(",", ":"))
        return True

    def pending(self, limit: int | None = None) -> list[dict]:
        """The oldest ``limit`` entries (all by default), oldest first."""
        if self._entries is None:
            return []
        items = []
        for _key, value in self._entries.items(min=_KEEP, excludemin=True):
            if limit is not None and len(items) >= limit:
                break
            items.append(json.loads(value))
        return items

    def remove(self, alert_ids) -> int:
        removed = 0
        for alert_id in alert_ids:
            if self._entries is not None and alert_id in self._entries:
                del self._entries[alert_id]
                removed += 1
        return removed
