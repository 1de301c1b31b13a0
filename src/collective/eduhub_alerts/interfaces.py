"""Interfaces of the add-on: the browser layer and the settings schema."""

from zope import schema
from zope.interface import Attribute
from zope.interface import Interface
from zope.schema.vocabulary import SimpleTerm
from zope.schema.vocabulary import SimpleVocabulary
from zope.publisher.interfaces.browser import IDefaultBrowserLayer

from . import _


SETTINGS_PREFIX = "collective.eduhub_alerts"
"""Registry prefix of :class:`IEduhubAlertsSettings` records."""


class IEduhubAlertsLayer(IDefaultBrowserLayer):
    """Browser layer: every view and service of the add-on is bound to it,
    so nothing exists on a site until the add-on is installed."""


EVENT_KINDS = SimpleVocabulary(
    [
        SimpleTerm("content.added", title=_("Content added")),
        SimpleTerm("content.modified", title=_("Content modified")),
        SimpleTerm("content.removed", title=_("Content removed")),
        SimpleTerm("workflow", title=_("Workflow transitions")),
    ]
)


class IAlertEvent(Interface):
    """An application event that should alert, e.g. "schedule import
    finished". Notify an :class:`collective.eduhub_alerts.events.AlertEvent`;
    the add-on sends it like :func:`collective.eduhub_alerts.api.send_alert`."""

    topic = Attribute("Dotted topic, e.g. app.schedule_import.finished")
    title = Attribute("Plain-text title")
    message = Attribute("Markdown message")
    severity = Attribute("info, success, warning, error or critical")
    context = Attribute("The object the alert is about (sets url and audience), or None")
    audience = Attribute("Principals allowed to see it, when there is no context")
    slack = Attribute("Slack routes: [{'channel': 'C123'}, {'user': 'U123'}]")


class IEduhubAlertsSettings(Interface):
    """Site settings, stored in the registry (secrets never are: they come
    from the environment)."""

    enabled = schema.Bool(
        title=_("label_enabled", default="Send alerts"),
        description=_(
            "help_enabled",
            default="When off, no event of this site produces an alert.",
        ),
        default=True,
        required=False,
    )

    alert_events = schema.Set(
        title=_("label_alert_events", default="Events that alert"),
        description=_(
            "help_alert_events",
            default="Which content and workflow events produce an alert.",
        ),
        value_type=schema.Choice(vocabulary=EVENT_KINDS),
        default={"content.added", "content.modified", "content.removed", "workflow"},
        required=False,
    )

    portal_types = schema.List(
        title=_("label_portal_types", default="Content types"),
        description=_(
            "help_portal_types",
            default="Only content of these types alerts. Leave empty for all types.",
        ),
        value_type=schema.Choice(vocabulary="plone.app.vocabularies.ReallyUserFriendlyTypes"),
        default=[],
        required=False,
    )

    transitions = schema.List(
        title=_("label_transitions", default="Workflow transitions"),
        description=_(
            "help_transitions",
            default="Only these workflow transitions alert. Leave empty for all.",
        ),
        value_type=schema.Choice(vocabulary="plone.app.vocabularies.WorkflowTransitions"),
        default=[],
        required=False,
    )
