"""The public Python API and IAlertEvent, for application events."""

from plone import api
from zope.event import notify

from collective.eduhub_alerts.alert import InvalidAlert
from collective.eduhub_alerts.api import send_alert
from collective.eduhub_alerts.events import AlertEvent

import pytest
import transaction


@pytest.fixture
def timetable(site, committed, redis_client):
    doc = committed(lambda: api.content.create(container=site, type="Document", id="timetable"))
    redis_client.flushdb()
    return doc


def test_send_alert_about_an_object_reaches_its_viewers(timetable, stream_alerts):
    alert = send_alert(
        topic="app.schedule_import.finished",
        title="Timetable import finished",
        message="**412** lessons imported.",
        severity="success",
        context=timetable,
        slack=[{"channel": "C0TIMETABLE"}],
    )
    assert stream_alerts() == []  # only after the commit
    transaction.commit()
    [(_, pushed)] = stream_alerts()
    assert pushed == alert
    assert pushed["url"] == timetable.absolute_url()
    assert pushed["source"]["uid"] == api.content.get_uuid(timetable)
    assert "Anonymous" not in pushed["audience"]  # a private page
    assert pushed["routes"] == {"websocket": True, "slack": [{"channel": "C0TIMETABLE"}]}


def test_send_alert_to_explicit_principals(site, stream_alerts):
    send_alert(topic="manual", title="Staff meeting at 4", audience=["user:teachers"])
    transaction.commit()
    [(_, pushed)] = stream_alerts()
    assert pushed["audience"] == ["user:teachers"]
    assert "url" not in pushed


def test_alert_event_is_sent(timetable, stream_alerts):
    notify(AlertEvent(topic="app.sync.failed", title="Sync failed", severity="error",
                      context=timetable))
    transaction.commit()
    [(_, pushed)] = stream_alerts()
    assert (pushed["topic"], pushed["severity"]) == ("app.sync.failed", "error")


def test_send_alert_needs_an_audience_or_a_context(site):
    with pytest.raises(ValueError, match="audience"):
        send_alert(topic="manual", title="To whom?")


def test_invalid_alert_names_the_field(site):
    with pytest.raises(InvalidAlert) as info:
        send_alert(topic="manual", title="x", severity="urgent", audience=["Member"])
    assert info.value.field == "severity"


def test_nothing_is_sent_when_alerts_are_off(site, set_record, stream_alerts):
    set_record("enabled", False)
    assert send_alert(topic="manual", title="x", audience=["Member"]) is None
    transaction.commit()
    assert stream_alerts() == []
