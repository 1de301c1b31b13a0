"""Interfaces of the add-on: the browser layer, the settings schema and
the application alert event."""

import re

from zope import schema
from zope.interface import Attribute
from zope.interface import Interface
from zope.interface import Invalid
from zope.schema.vocabulary import SimpleTerm
from zope.schema.vocabulary import SimpleVocabulary
from zope.publisher.interfaces.browser import IDefaultBrowserLayer

from . import _


SETTINGS_PREFIX = "collective.eduhub_alerts"
"""Registry prefix of :class:`IEduhubAlertsSettings` records."""

SEVERITY_NAMES = ("info", "success", "warning", "error", "critical")
_TOPIC_PATTERN = re.compile(r"^(\*|[a-z0-9_-]+)(\.(\*|[a-z0-9_-]+))*$")
_SLACK_TARGET = re.compile(r"^@?[A-Z0-9][A-Z0-9_-]{1,50}$")
_SLACK_WEBHOOK = re.compile(r"^webhook:([a-z0-9_-]{1,40})$")


class InvalidSetting(Invalid):
    """A setting's value is malformed; the message says how to write it."""

    def __str__(self):
        return self.args[0]

    def doc(self):
        return self.args[0]


def _pattern_and_value(line: str) -> tuple[str, str]:
    pattern, sep, value = (part.strip() for part in line.partition("="))
    if not sep or not value:
        raise InvalidSetting(_(
            "error_missing_equals",
            default="Write each line as \"topic pattern = value\", got \"${line}\".",
            mapping={"line": line},
        ))
    if not _TOPIC_PATTERN.match(pattern):
        raise InvalidSetting(_(
            "error_topic_pattern",
            default="\"${pattern}\" is no topic pattern: dotted lower-case words, "
            "\"*\" for any one word (e.g. workflow.*).",
            mapping={"pattern": pattern},
        ))
    return pattern, value


def parse_slack_route(line: str) -> tuple[str, list[dict]]:
    """``"workflow.* = C0123ABCD, @U0456EFGH, webhook:staffroom"`` -> pattern and routes.

    ``webhook:<name>`` names a Slack incoming webhook whose URL (a secret) is
    configured in the sidecar as ``EDUHUB_SLACK_WEBHOOK_<NAME>``; the alert
    carries only the name.
    """
    pattern, value = _pattern_and_value(line)
    routes = []
    for target in (t.strip() for t in value.split(",")):
        webhook = _SLACK_WEBHOOK.match(target)
        if webhook:
            routes.append({"webhook": webhook.group(1)})
            continue
        if not _SLACK_TARGET.match(target):
            raise InvalidSetting(_(
                "error_slack_target",
                default="\"${target}\" is no Slack channel, user or webhook: use a channel "
                "id such as C0123ABCD, @ and a user id such as @U0456EFGH, or webhook: and "
                "a webhook name (1 to 40 of a-z, 0-9, _ and -) such as webhook:staffroom.",
                mapping={"target": target},
            ))
        routes.append({"user": target[1:]} if target.startswith("@") else {"channel": target})
    return pattern, routes


def parse_severity_rule(line: str) -> tuple[str, str]:
    """``"workflow.retract = warning"`` -> pattern and severity."""
    pattern, severity = _pattern_and_value(line)
    if severity not in SEVERITY_NAMES:
        raise InvalidSetting(_(
            "error_severity",
            default="\"${severity}\" is no severity: use one of ${names}.",
            mapping={"severity": severity, "names": ", ".join(SEVERITY_NAMES)},
        ))
    return pattern, severity


def parse_template_rule(line: str) -> tuple[str, str, str]:
    """``"workflow.publish = ${title} is online | Published by ${user_fullname}"``
    -> pattern, title template, message template (may be empty)."""
    pattern, value = _pattern_and_value(line)
    title, _sep, message = (part.strip() for part in value.partition("|"))
    if not title:
        raise InvalidSetting(_(
            "error_template_title",
            default="Give a title template before \"|\", e.g. "
            "\"workflow.publish = ${title} is online | by ${user_fullname}\".",
        ))
    return pattern, title, message


def _valid_template_rule(line: str) -> bool:
    parse_template_rule(line)
    return True


def _valid_slack_route(line: str) -> bool:
    parse_slack_route(line)
    return True


def _valid_severity_rule(line: str) -> bool:
    parse_severity_rule(line)
    return True


def _valid_topic_pattern(pattern: str) -> bool:
    _pattern_and_value(f"{pattern} = x")
    return True


def _valid_websocket_url(url: str) -> bool:
    if url and not re.match(r"^wss?://[^\s/]+", url):
        raise InvalidSetting(_(
            "error_websocket_url",
            default="The WebSocket URL starts with ws:// or wss://, e.g. wss://alerts.school.edu/ws.",
        ))
    return True


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
    slack = Attribute(
        "Slack routes: [{'channel': 'C123'}, {'user': 'U123'}, {'webhook': 'staffroom'}]")


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

    slack_routes = schema.List(
        title=_("label_slack_routes", default="Slack routes"),
        description=_(
            "help_slack_routes",
            default="One line per rule: a topic pattern, \"=\", then Slack channel ids, "
            "@user ids or webhook:name (an incoming webhook whose URL the sidecar reads "
            "from EDUHUB_SLACK_WEBHOOK_NAME) separated by commas. E.g. "
            "\"workflow.publish = C0123ABCD\", \"app.* = C0456EFGH, @U0789IJKL\", "
            "\"workflow.* = C0123ABCD, webhook:staffroom\". Every matching line adds its "
            "routes.",
        ),
        value_type=schema.TextLine(constraint=_valid_slack_route),
        default=[],
        required=False,
    )

    severities = schema.List(
        title=_("label_severities", default="Severity per topic"),
        description=_(
            "help_severities",
            default="One line per rule: \"topic pattern = severity\" (info, success, "
            "warning, error, critical), e.g. \"workflow.retract = warning\". The first "
            "matching line wins; otherwise the add-on's default applies.",
        ),
        value_type=schema.TextLine(constraint=_valid_severity_rule),
        default=[],
        required=False,
    )

    templates = schema.List(
        title=_("label_templates", default="Message templates"),
        description=_(
            "help_templates",
            default="One line per rule: \"topic pattern = title | message\", with "
            "substitutions such as ${title}, ${type}, ${url}, ${user_fullname} or "
            "${review_state_title}; the message (Markdown) is optional. E.g. "
            "\"workflow.publish = ${title} is online | Published by ${user_fullname}\". "
            "The first matching line wins; otherwise the built-in texts apply.",
        ),
        value_type=schema.TextLine(constraint=_valid_template_rule),
        default=[],
        required=False,
    )

    websocket_url = schema.TextLine(
        title=_("label_websocket_url", default="Public WebSocket URL of the sidecar"),
        description=_(
            "help_websocket_url",
            default="Where browsers connect, e.g. wss://www.school.edu/alerts/ws. Empty: "
            "the EDUHUB_WS_PUBLIC_URL environment variable, else ws://localhost:8090/ws.",
        ),
        constraint=_valid_websocket_url,
        default="",
        required=False,
    )

    browser_topics = schema.List(
        title=_("label_browser_topics", default="Topics shown in the browser"),
        description=_(
            "help_browser_topics",
            default="Topic patterns the Classic UI and Volto pages subscribe to, one per "
            "line (e.g. workflow.* or manual). Empty: every topic.",
        ),
        value_type=schema.TextLine(constraint=_valid_topic_pattern),
        default=[],
        required=False,
    )

    post_rate_per_minute = schema.Int(
        title=_("label_post_rate", default="Manual alerts per minute"),
        description=_(
            "help_post_rate",
            default="How many alerts one user, and one IP address, may send through "
            "POST @alerts per minute.",
        ),
        default=20,
        min=1,
        max=10000,
        required=True,
    )
