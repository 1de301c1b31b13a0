"""@alerts-outbox: the alerts still waiting for Redis (GET) and a push now (POST)."""

from plone.protect.interfaces import IDisableCSRFProtection
from plone.restapi.services import Service
from zope.interface import alsoProvides

from collective.eduhub_alerts.outbox import Outbox
from collective.eduhub_alerts.publisher import flush
from collective.eduhub_alerts.publisher import in_own_transaction


SHOWN = 100


class OutboxGet(Service):
    def reply(self):
        outbox = Outbox(self.context, create=False)
        return {
            "@id": f"{self.context.absolute_url()}/@alerts-outbox",
            "items_total": len(outbox),
            "items": outbox.pending(SHOWN),
        }


class OutboxFlush(Service):
    def reply(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        db, path = self.context._p_jar.db(), self.context.getPhysicalPath()
        pushed = flush(db, path)
        # Counted in a transaction of its own, which sees what flush committed.
        remaining = in_own_transaction(db, path, lambda site: len(Outbox(site, create=False)))
        if remaining:
            self.request.response.setStatus(503)
        return {"pushed": pushed, "remaining": remaining}
