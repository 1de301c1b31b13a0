"""A workflow transition becomes one alert, built when the transaction commits."""

from plone import api

import pytest


@pytest.fixture
def document(site, committed):
    return committed(
        lambda: api.content.create(
            container=site, type="Document", id="timetable", title="Spring timetable"
        )
    )


def transition(committed, obj, name):
    committed(lambda: api.content.transition(obj, transition=name))


def alerts_of(stream_alerts, topic_prefix="workflow."):
    return [alert for _, alert in stream_alerts() if alert["topic"].startswith(topic_prefix)]


def test_publish_sends_one_workflow_alert(document, committed, stream_alerts):
    transition(committed, document, "publish")
    [alert] = alerts_of(stream_alerts)
    assert alert["topic"] == "workflow.publish"
    assert alert["severity"] == "success"
    assert alert["title"] == "Publish: Spring timetable"
    assert alert["message"] == "**Spring timetable** is now *Published* (Publish by test_user_1_)."
    assert alert["url"] == document.absolute_url()
    assert alert["source"] == {
        "site": "plone",
        "uid": api.content.get_uuid(document),
        "path": "/plone/timetable",
        "portal_type": "Document",
        "review_state": "published",
        "transition": "publish",
        "actor": "test_user_1_",
    }


def test_audience_of_published_document_includes_anonymous(document, committed, stream_alerts):
    transition(committed, document, "publish")
    [alert] = alerts_of(stream_alerts)
    assert "Anonymous" in alert["audience"]


def test_audience_is_what_the_catalog_indexes(site, document, committed, stream_alerts):
    transition(committed, document, "submit")
    [alert] = alerts_of(stream_alerts)
    [brain] = api.content.find(UID=api.content.get_uuid(document), unrestricted=True)
    indexed = site.portal_catalog.getIndexDataForRID(brain.getRID())["allowedRolesAndUsers"]
    assert alert["audience"] == sorted(indexed)
    assert "Anonymous" not in alert["audience"]
    assert "Member" not in alert["audience"]


def test_two_transitions_in_one_transaction_send_two_alerts(document, committed, stream_alerts):
    def submit_and_publish():
        api.content.transition(document, transition="submit")
        api.content.transition(document, transition="publish")

    committed(submit_and_publish)
    states = [a["source"]["review_state"] for a in alerts_of(stream_alerts)]
    assert states == ["pending", "published"]


def test_only_chosen_transitions_alert(document, committed, stream_alerts, set_record):
    set_record("transitions", ["publish"])
    transition(committed, document, "submit")
    transition(committed, document, "publish")
    assert [a["topic"] for a in alerts_of(stream_alerts)] == ["workflow.publish"]


def test_no_alert_when_alerts_are_switched_off(document, committed, stream_alerts, set_record):
    set_record("enabled", False)
    transition(committed, document, "publish")
    assert alerts_of(stream_alerts) == []
