"""The words of each alert: translated titles and Markdown messages."""

from plone import api
from plone.stringinterp.interfaces import IStringInterpolator
from zope.globalrequest import getRequest
from zope.i18n import translate

from . import _
from .settings import template_for


_CONTENT = {
    "content.added": (
        _("alert_added_title", default="Added: ${title}"),
        _("alert_added_message", default="**${title}** (${type}) was added by ${actor}."),
    ),
    "content.modified": (
        _("alert_modified_title", default="Changed: ${title}"),
        _("alert_modified_message", default="**${title}** (${type}) was changed by ${actor}."),
    ),
    "content.removed": (
        _("alert_removed_title", default="Removed: ${title}"),
        _("alert_removed_message", default="**${title}** (${type}) was removed by ${actor}."),
    ),
}


def _t(msgid, **mapping) -> str:
    return translate(_(msgid, default=msgid.default, mapping=mapping), context=getRequest())


def actor_name(user) -> str:
    return user.getProperty("fullname", None) or user.getId() or "Anonymous"


def type_title(obj) -> str:
    fti = api.portal.get_tool("portal_types").getTypeInfo(obj)
    return translate(fti.Title(), context=getRequest()) if fti else obj.portal_type


def content_texts(kind: str, obj, actor) -> tuple[str, str]:
    """(title, message) of a content alert."""
    title_id, message_id = _CONTENT[kind]
    title = obj.Title() or obj.getId()
    return (
        _t(title_id, title=title),
        _t(message_id, title=title, type=type_title(obj), actor=actor_name(actor)),
    )


def workflow_texts(obj, workflow, action: str, review_state, actor) -> tuple[str, str]:
    """(title, message) of a workflow alert, with the workflow's own titles
    of the transition and the state (message ids of the "plone" domain)."""
    request = getRequest()
    transition_title = action
    if workflow is not None and action in workflow.transitions.objectIds():
        transition = workflow.transitions[action]
        transition_title = translate(
            transition.actbox_name or transition.title or action, domain="plone", context=request
        )
    state_title = review_state or "-"
    if review_state and workflow is not None and review_state in workflow.states.objectIds():
        state_title = translate(
            workflow.states[review_state].title or review_state, domain="plone", context=request
        )
    title = obj.Title() or obj.getId()
    return (
        _t(_("alert_workflow_title", default="${transition}: ${title}"),
           transition=transition_title, title=title),
        _t(_("alert_workflow_message",
             default="**${title}** is now *${state}* (${transition} by ${actor})."),
           title=title, state=state_title, transition=transition_title,
           actor=actor_name(actor)),
    )


def site_texts(topic: str, obj, default: tuple[str, str]) -> tuple[str, str]:
    """The control panel's template for ``topic``, filled in for ``obj``
    (plone.stringinterp substitutions), else ``default``."""
    template = template_for(topic)
    if template is None:
        return default
    interpolate = IStringInterpolator(obj)
    title = interpolate(template[0]).strip() or default[0]
    message = interpolate(template[1]) if template[1] else default[1]
    return title, message
