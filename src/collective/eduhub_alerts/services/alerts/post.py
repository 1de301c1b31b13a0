"""POST @alerts: send an alert by hand (permission *Send alerts*)."""

from plone import api
from plone.restapi.services import Service
from zExceptions import BadRequest

from collective.eduhub_alerts.alert import InvalidAlert
from collective.eduhub_alerts.api import send_alert
from collective.eduhub_alerts.publisher import redis_client
from collective.eduhub_alerts.rate_limit import retry_after
from collective.eduhub_alerts.services import json_object_body
from collective.eduhub_alerts.settings import post_rate_per_minute


FIELDS = {"topic", "title", "message", "severity", "url", "audience", "context", "slack"}
DEFAULT_AUDIENCE = ["Authenticated"]


class AlertsPost(Service):
    def reply(self):
        body = json_object_body(self.request)
        if body is None:
            raise BadRequest("The body must be a JSON object.")
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field; known: {', '.join(sorted(FIELDS))}")
        wait = retry_after(
            redis_client(),
            [f"user:{api.user.get_current().getId()}", f"ip:{self.request.getClientAddr()}"],
            post_rate_per_minute(),
        )
        if wait:
            self.request.response.setStatus(429)
            self.request.response.setHeader("Retry-After", str(wait))
            return {"error": {"type": "TooManyRequests",
                              "message": f"Too many alerts; try again in {wait} seconds."}}
        context = None
        if body.get("context"):
            context = api.content.get(UID=body["context"])
            if context is None or not api.user.has_permission("View", obj=context):
                raise BadRequest("context: no content with this UID that you may view")
        try:
            alert = send_alert(
                topic=body.get("topic", "manual"),
                title=body.get("title", ""),
                message=body.get("message", ""),
                severity=body.get("severity", "info"),
                url=body.get("url"),
                context=context,
                audience=body.get("audience", None if context else DEFAULT_AUDIENCE),
                slack=body.get("slack"),
            )
        except (InvalidAlert, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        if alert is None:
            raise BadRequest("Alerts are switched off on this site (control panel).")
        location = f"{self.context.absolute_url()}/@alerts/{alert['id']}"
        self.request.response.setStatus(201)
        self.request.response.setHeader("Location", location)
        return {"@id": location, **alert}
