"""Event subscribers: each notes what happened; :mod:`.collector` turns the
notes into alerts at commit time."""

from OFS.interfaces import IObjectWillBeMovedEvent
from Products.CMFCore.interfaces import ISiteRoot
from plone import api
from plone.app.workflow.interfaces import ILocalrolesModifiedEvent
from zope.container.interfaces import IContainerModifiedEvent

from . import collector
from .api import send_alert
from .settings import event_alerts
from .settings import transition_alerts


def _site_ready(obj) -> bool:
    # No site yet (the site itself being created) or the site being removed.
    try:
        return api.portal.get() is not None
    except api.exc.CannotGetPortalError:
        return False


def content_added(obj, event):
    if _site_ready(obj) and event_alerts("content.added", obj.portal_type):
        collector.note(obj, "content.added")


def content_modified(obj, event):
    # Adding or removing a child "modifies" the container, and the sharing
    # tab "modifies" the object: neither is a change an editor made to it.
    if IContainerModifiedEvent.providedBy(event) or ILocalrolesModifiedEvent.providedBy(event):
        return
    if _site_ready(obj) and event_alerts("content.modified", obj.portal_type):
        collector.note(obj, "content.modified")


def content_will_be_removed(obj, event):
    if IObjectWillBeMovedEvent.providedBy(event) and event.newParent is not None:
        return  # a move or rename, not a removal
    if ISiteRoot.providedBy(event.object):
        return  # the whole site goes: nobody is left to alert
    if _site_ready(obj) and event_alerts("content.removed", obj.portal_type):
        collector.note_removal(obj)


def workflow_transition(obj, event):
    """An alert for a workflow transition that succeeded on ``obj``."""
    if not event.action or not _site_ready(obj):
        return
    if event_alerts("workflow", obj.portal_type) and transition_alerts(event.action):
        collector.note_transition(obj, event.workflow, event.action)


def alert_event(event):
    """Send an application's :class:`IAlertEvent`."""
    send_alert(
        topic=event.topic,
        title=event.title,
        message=event.message,
        severity=event.severity,
        context=event.context,
        audience=event.audience,
        slack=event.slack,
    )
