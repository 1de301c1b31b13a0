"""Event subscribers that turn Plone events into alerts."""

from plone import api
from zope.globalrequest import getRequest
from zope.i18n import translate

from . import _
from .alert import make_alert
from .audience import object_audience
from .interfaces import SETTINGS_PREFIX
from .publisher import queue_alert

import re


def _alerts_enabled() -> bool:
    # The record exists only where the add-on is installed, so sites of the
    # same instance without it stay silent.
    return bool(api.portal.get_registry_record(f"{SETTINGS_PREFIX}.enabled", default=False))


def _topic_segment(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_") or "transition"


def workflow_transition_alert(obj, event):
    """An alert for a workflow transition that succeeded on ``obj``."""
    if not event.action or not _alerts_enabled():
        return
    workflow = event.workflow
    transition = None
    if workflow is not None and event.action in workflow.transitions.objectIds():
        transition = workflow.transitions[event.action]
    request = getRequest()
    transition_title = event.action
    if transition is not None:
        # Workflow titles are message ids of the "plone" domain.
        transition_title = translate(
            transition.actbox_name or transition.title or event.action,
            domain="plone",
            context=request,
        )
    review_state = api.content.get_state(obj, default=None)
    actor = api.user.get_current()
    actor_id = actor.getId() or "Anonymous"
    actor_name = actor.getProperty("fullname", None) or actor_id
    title = obj.Title() or obj.getId()
    state_title = review_state or "-"
    if review_state and workflow is not None and review_state in workflow.states.objectIds():
        state_title = translate(
            workflow.states[review_state].title or review_state, domain="plone", context=request
        )
    site = api.portal.get()
    queue_alert(
        make_alert(
            topic=f"workflow.{_topic_segment(event.action)}",
            title=translate(
                _("alert_workflow_title", default="${transition}: ${title}",
                  mapping={"transition": transition_title, "title": title}),
                context=request,
            ),
            message=translate(
                _("alert_workflow_message",
                  default="**${title}** is now *${state}* (${transition} by ${actor}).",
                  mapping={"title": title, "state": state_title,
                           "transition": transition_title,
                           "actor": actor_name}),
                context=request,
            ),
            audience=object_audience(obj),
            url=obj.absolute_url(),
            source={
                "site": site.getId(),
                "uid": api.content.get_uuid(obj),
                "path": "/".join(obj.getPhysicalPath()),
                "portal_type": obj.portal_type,
                "review_state": review_state,
                "transition": event.action,
                "actor": actor_id,
            },
        ),
        site,
    )
