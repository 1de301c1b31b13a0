"""Collect what happened to each object during a transaction, and turn it
into alerts just before the commit.

Plone fires several events for one save (added, then modified, sometimes
modified twice), so subscribers only note what happened here. At commit time
each object yields at most one content alert (removed, else added, else
modified) plus one alert per workflow transition, built from the object's
final state: its audience is what the catalog will index once the
transaction commits.
"""

from dataclasses import dataclass
from dataclasses import field

from plone import api

import transaction

from .alert import make_alert
from .audience import object_audience
from .messages import content_texts
from .messages import site_texts
from .messages import workflow_texts
from .publisher import queue_alert
from .settings import severity_for
from .settings import slack_routes_for

import re


_KEY = "collective.eduhub_alerts.changes"

SEVERITY = {
    "content.added": "info",
    "content.modified": "info",
    "content.removed": "warning",
    "workflow": "info",
    "workflow.publish": "success",
}


@dataclass
class ObjectChanges:
    obj: object
    kinds: set = field(default_factory=set)
    transitions: list = field(default_factory=list)  # (workflow, action, review_state)
    removed_alert: dict | None = None


def _changes() -> dict:
    txn = transaction.get()
    try:
        return txn.data(_KEY)
    except KeyError:
        changes = {}
        txn.set_data(_KEY, changes)
        txn.addBeforeCommitHook(_queue_alerts, args=(changes, api.portal.get()))
        return changes


def _entry(obj) -> ObjectChanges:
    changes = _changes()
    key = api.content.get_uuid(obj) or id(obj)
    if key not in changes:
        changes[key] = ObjectChanges(obj)
    return changes[key]


def note(obj, kind: str) -> None:
    """Remember that ``obj`` was added or modified in this transaction."""
    _entry(obj).kinds.add(kind)


def note_transition(obj, workflow, action: str) -> None:
    _entry(obj).transitions.append((workflow, action, api.content.get_state(obj, default=None)))


def note_removal(obj) -> None:
    """Build the removal alert now: after the commit the object, and the
    local roles its audience depends on, are gone."""
    entry = _entry(obj)
    entry.kinds.add("content.removed")
    entry.removed_alert = content_alert("content.removed", obj)


def topic_segment(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_") or "transition"


def _source(obj, **extra) -> dict:
    return {
        "site": api.portal.get().getId(),
        "uid": api.content.get_uuid(obj),
        "path": "/".join(obj.getPhysicalPath()),
        "portal_type": obj.portal_type,
        "actor": api.user.get_current().getId() or "Anonymous",
        **extra,
    }


def content_alert(kind: str, obj) -> dict:
    title, message = site_texts(kind, obj, content_texts(kind, obj, api.user.get_current()))
    return make_alert(
        topic=kind,
        severity=severity_for(kind, SEVERITY[kind]),
        slack_routes=slack_routes_for(kind),
        title=title,
        message=message,
        audience=object_audience(obj),
        url=obj.absolute_url(),
        source=_source(obj, review_state=api.content.get_state(obj, default=None)),
    )


def workflow_alert(obj, workflow, action: str, review_state) -> dict:
    topic = f"workflow.{topic_segment(action)}"
    title, message = site_texts(
        topic, obj, workflow_texts(obj, workflow, action, review_state, api.user.get_current())
    )
    return make_alert(
        topic=topic,
        severity=severity_for(topic, SEVERITY.get(topic, SEVERITY["workflow"])),
        slack_routes=slack_routes_for(topic),
        title=title,
        message=message,
        audience=object_audience(obj),
        url=obj.absolute_url(),
        source=_source(obj, review_state=review_state, transition=action),
    )


def _queue_alerts(changes: dict, site) -> None:
    for entry in changes.values():
        for alert in _alerts_for(entry):
            queue_alert(alert, site)


def _alerts_for(entry: ObjectChanges) -> list[dict]:
    if "content.removed" in entry.kinds:
        # Added and removed within one transaction: nobody saw it.
        if "content.added" in entry.kinds or entry.removed_alert is None:
            return []
        return [entry.removed_alert]
    alerts = []
    if "content.added" in entry.kinds:
        alerts.append(content_alert("content.added", entry.obj))
    elif "content.modified" in entry.kinds and not entry.transitions:
        alerts.append(content_alert("content.modified", entry.obj))
    for workflow, action, review_state in entry.transitions:
        alerts.append(workflow_alert(entry.obj, workflow, action, review_state))
    return alerts
