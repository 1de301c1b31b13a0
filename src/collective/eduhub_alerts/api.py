"""The public Python API: send an alert from any add-on, view or script.

    from collective.eduhub_alerts.api import send_alert

    send_alert(
        topic="app.schedule_import.finished",
        title="Timetable import finished",
        message="**412** lessons imported, *3* conflicts.",
        severity="success",
        context=portal["timetable"],     # whoever may view it gets the alert
    )

Like every alert, it is written to the outbox in the current transaction and
pushed after the commit: call ``transaction.commit()`` in a script.
"""

from plone import api

from .alert import make_alert
from .audience import object_audience
from .publisher import queue_alert
from .settings import alerts_enabled
from .settings import slack_routes_for

import logging


logger = logging.getLogger(__name__)


def send_alert(
    *,
    topic: str,
    title: str,
    message: str = "",
    severity: str = "info",
    context=None,
    audience=None,
    url: str | None = None,
    slack: list | None = None,
    websocket: bool = True,
) -> dict | None:
    """Queue an alert; return it, or None when alerts are off on the site.

    Who may see it: ``audience`` (principals such as ``"Editor"``,
    ``"user:jane"``, ``"user:teachers"``) if given, else everyone who may
    view ``context``. One of the two is required. ``url`` defaults to the
    context's. ``slack`` lists routes: ``[{"channel": "C123"}, {"user": "U123"}]``;
    when omitted, the control panel's Slack routes for the topic apply.

    Raises :class:`collective.eduhub_alerts.alert.InvalidAlert` naming the
    bad field, and ``ValueError`` when neither audience nor context is given.
    """
    if audience is None and context is None:
        raise ValueError("audience: give the principals, or a context whose viewers see the alert")
    if not alerts_enabled():
        logger.info("alerts are switched off on this site; %r not sent", topic)
        return None
    site = api.portal.get()
    source = {"site": site.getId(), "actor": api.user.get_current().getId() or "Anonymous"}
    if context is not None:
        source.update(
            uid=api.content.get_uuid(context),
            path="/".join(context.getPhysicalPath()),
            portal_type=getattr(context, "portal_type", None),
        )
        url = url or context.absolute_url()
    alert = make_alert(
        topic=topic,
        title=title,
        message=message,
        severity=severity,
        audience=audience if audience is not None else object_audience(context),
        url=url,
        source=source,
        slack_routes=slack if slack is not None else slack_routes_for(topic),
        websocket=websocket,
    )
    queue_alert(alert, site)
    return alert
