"""The periodic flush: a daemon thread per Zope process that pushes what
the outbox of each Plone site still holds (after a Redis outage).

Started when Zope opens its database; ``EDUHUB_OUTBOX_FLUSH_INTERVAL``
seconds apart (default 30; 0 turns it off). Every instance of a ZEO or
RelStorage cluster may run one: pushes are idempotent per alert id.
"""

from Products.CMFCore.interfaces import ISiteRoot

import logging
import threading

from .config import get_settings
from .outbox import Outbox
from .publisher import flush


logger = logging.getLogger(__name__)


def sites_with_backlog(db) -> list[tuple]:
    """Physical paths of the top-level Plone sites whose outbox is not empty."""
    connection = db.open()
    try:
        app = connection.root()["Application"]
        return [
            site.getPhysicalPath()
            for site in app.objectValues()
            if ISiteRoot.providedBy(site) and Outbox(site, create=False).has_pending()
        ]
    finally:
        connection.close()


def flush_all(db) -> int:
    """Flush every site's outbox once; return how many alerts were pushed."""
    return sum(flush(db, path) for path in sites_with_backlog(db))


class OutboxFlusher(threading.Thread):
    def __init__(self, db, interval: float):
        super().__init__(name="eduhub-alerts-outbox-flusher", daemon=True)
        self.db = db
        self.interval = interval
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.interval):
            try:
                pushed = flush_all(self.db)
                if pushed:
                    logger.info("pushed %d alert(s) from the outbox", pushed)
            except Exception:
                logger.exception("flushing the alert outbox failed; retrying later")

    def stop(self):
        self.stopped.set()


def start_flusher(event):
    """Subscriber of ``IDatabaseOpenedWithRoot``."""
    interval = get_settings().outbox_flush_interval
    if interval > 0:
        OutboxFlusher(event.database, interval).start()
