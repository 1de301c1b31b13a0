"""The content-rule action "Send real-time alert".

Site admins combine it with Plone's own triggers and conditions (Site Setup
-> Content Rules, or Volto's content-rules control panel). Title and message
take plone.stringinterp substitutions such as ``${title}``, ``${url}``,
``${user_fullname}`` or ``${review_state_title}``.
"""

from OFS.SimpleItem import SimpleItem
from plone.app.contentrules.actions import ActionAddForm
from plone.app.contentrules.actions import ActionEditForm
from plone.app.contentrules.browser.formhelper import ContentRuleFormWrapper
from plone.contentrules.rule.interfaces import IExecutable
from plone.contentrules.rule.interfaces import IRuleElementData
from plone.stringinterp.interfaces import IStringInterpolator
from zope import schema
from zope.component import adapter
from zope.interface import implementer
from zope.interface import Interface
from zope.interface.interfaces import IObjectEvent

from collective.eduhub_alerts import _
from collective.eduhub_alerts.api import send_alert
from collective.eduhub_alerts.interfaces import InvalidSetting
from collective.eduhub_alerts.interfaces import SEVERITY_NAMES
from collective.eduhub_alerts.interfaces import parse_slack_route

import re


ELEMENT = "collective.eduhub_alerts.actions.Alert"
_TOPIC = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


def _valid_topic(value: str) -> bool:
    if not _TOPIC.match(value):
        raise InvalidSetting(_(
            "error_rule_topic",
            default="Dotted lower-case words, e.g. rule.exam_published.",
        ))
    return True


def _valid_slack_target(value: str) -> bool:
    parse_slack_route(f"x = {value}")
    return True


def slack_routes(targets) -> list[dict]:
    return [route for target in targets or () for route in parse_slack_route(f"x = {target}")[1]]


class IAlertAction(Interface):
    """What the site admin configures; also the add and edit forms' schema."""

    topic = schema.TextLine(
        title=_("label_rule_topic", default="Topic"),
        description=_(
            "help_rule_topic",
            default="Dotted lower-case words; subscribers and Slack routes match on it.",
        ),
        default="rule.alert",
        constraint=_valid_topic,
        required=True,
    )
    title = schema.TextLine(
        title=_("label_rule_title", default="Title"),
        description=_(
            "help_rule_title",
            default="Plain text. Substitutions such as ${title} or ${type} are replaced.",
        ),
        default="${title}",
        required=True,
    )
    message = schema.Text(
        title=_("label_rule_message", default="Message"),
        description=_(
            "help_rule_message",
            default="Markdown. Substitutions such as ${user_fullname}, ${url} or "
            "${review_state_title} are replaced.",
        ),
        default="",
        required=False,
    )
    severity = schema.Choice(
        title=_("label_rule_severity", default="Severity"),
        values=SEVERITY_NAMES,
        default="info",
        required=True,
    )
    slack = schema.List(
        title=_("label_rule_slack", default="Slack"),
        description=_(
            "help_rule_slack",
            default="One per line: a channel id (C0123ABCD), @ and a user id (@U0456EFGH), "
            "or webhook: and the name of an incoming webhook configured in the sidecar "
            "(webhook:staffroom).",
        ),
        value_type=schema.TextLine(constraint=_valid_slack_target),
        default=[],
        required=False,
    )


@implementer(IAlertAction, IRuleElementData)
class AlertAction(SimpleItem):
    """The stored configuration of one "Send real-time alert" action."""

    topic = "rule.alert"
    title = "${title}"
    message = ""
    severity = "info"
    slack = ()

    element = ELEMENT

    @property
    def summary(self):
        return _(
            "summary_rule_alert",
            default="Send a ${severity} alert \"${title}\" on ${topic}",
            mapping={"severity": self.severity, "title": self.title, "topic": self.topic},
        )


@adapter(Interface, IAlertAction, Interface)
@implementer(IExecutable)
class AlertActionExecutor:
    def __init__(self, context, element, event):
        self.context = context
        self.element = element
        self.event = event

    def __call__(self):
        obj = self.event.object if IObjectEvent.providedBy(self.event) else self.context
        interpolate = IStringInterpolator(obj)
        element = self.element
        send_alert(
            topic=element.topic,
            title=interpolate(element.title).strip() or obj.Title(),
            message=interpolate(element.message or ""),
            severity=element.severity,
            context=obj,
            slack=slack_routes(element.slack) or None,
        )
        return True


class AlertAddForm(ActionAddForm):
    schema = IAlertAction
    label = _("label_add_rule_alert", default="Add a real-time alert action")
    description = _(
        "help_add_rule_alert",
        default="Sends an alert to the browsers of everyone who may view the object, "
        "and to Slack.",
    )
    form_name = _("Configure element")
    Type = AlertAction


class AlertAddFormView(ContentRuleFormWrapper):
    form = AlertAddForm


class AlertEditForm(ActionEditForm):
    schema = IAlertAction
    label = _("label_edit_rule_alert", default="Edit the real-time alert action")
    description = AlertAddForm.description
    form_name = _("Configure element")


class AlertEditFormView(ContentRuleFormWrapper):
    form = AlertEditForm
