"""GET @alerts: recent alerts the current user may see, newest first.
GET @alerts/<id>: one of them.

Users who may send alerts see them whole; everyone else without
``audience`` and ``routes`` (``alert.for_readers``)."""

from plone import api
from plone.restapi.batching import HypermediaBatch
from plone.restapi.services import Service
from zExceptions import BadRequest
from zExceptions import NotFound
from zope.interface import implementer
from zope.publisher.interfaces import IPublishTraverse

from collective.eduhub_alerts.alert import for_readers
from collective.eduhub_alerts.audience import user_principals
from collective.eduhub_alerts.history import AlertFilter
from collective.eduhub_alerts.history import InvalidFilter
from collective.eduhub_alerts.history import recent_alerts
from collective.eduhub_alerts.publisher import redis_client
from collective.eduhub_alerts.tokens import SEND_PERMISSION

import redis


@implementer(IPublishTraverse)
class AlertsGet(Service):
    def __init__(self, context, request):
        super().__init__(context, request)
        self.params = []

    def publishTraverse(self, request, name):
        self.params.append(name)
        return self

    def reply(self):
        try:
            alert_filter = AlertFilter.from_query(self.request.form)
        except InvalidFilter as exc:
            raise BadRequest(str(exc)) from None
        try:
            alerts = recent_alerts(
                redis_client(), user_principals(api.user.get_current()), alert_filter
            )
        except redis.RedisError:
            self.request.response.setStatus(503)
            return {"error": {"type": "ServiceUnavailable",
                              "message": "The alert history (Redis) is unreachable."}}
        if not api.user.has_permission(SEND_PERMISSION, obj=self.context):
            alerts = [for_readers(alert) for alert in alerts]
        base = f"{self.context.absolute_url()}/@alerts"
        if self.params:
            return self._one(alerts, base)
        batch = HypermediaBatch(self.request, alerts)
        result = {
            "@id": batch.canonical_url,
            "items": [{"@id": f"{base}/{a['id']}", **a} for a in batch],
            "items_total": batch.items_total,
        }
        if batch.links:
            result["batching"] = batch.links
        return result

    def _one(self, alerts, base):
        [alert_id] = self.params[:1]
        for alert in alerts:
            if alert["id"] == alert_id:
                return {"@id": f"{base}/{alert_id}", **alert}
        raise NotFound(alert_id)
