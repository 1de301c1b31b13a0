"""Application events that alert.

    from zope.event import notify
    from collective.eduhub_alerts.events import AlertEvent

    notify(AlertEvent(
        topic="app.schedule_import.finished",
        title="Timetable import finished",
        context=portal["timetable"],
    ))
"""

from zope.interface import implementer

from .interfaces import IAlertEvent


@implementer(IAlertEvent)
class AlertEvent:
    def __init__(
        self, topic, title, message="", severity="info", context=None, audience=None, slack=None
    ):
        self.topic = topic
        self.title = title
        self.message = message
        self.severity = severity
        self.context = context
        self.audience = audience
        self.slack = slack
