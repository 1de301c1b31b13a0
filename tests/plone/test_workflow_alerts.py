"""A workflow transition becomes an alert, queued on the transaction."""

from plone import api

from collective.eduhub_alerts.publisher import pending_alerts

import pytest


@pytest.fixture
def document(portal):
    with api.env.adopt_roles(["Manager"]):
        return api.content.create(
            container=portal, type="Document", id="timetable", title="Spring timetable"
        )


def publish(obj):
    with api.env.adopt_roles(["Manager"]):
        api.content.transition(obj, transition="publish")


def test_publish_queues_one_workflow_alert(document):
    publish(document)
    [alert] = pending_alerts()
    assert alert["topic"] == "workflow.publish"
    assert alert["title"] == "Publish: Spring timetable"
    assert alert["url"] == document.absolute_url()
    assert alert["source"]["review_state"] == "published"
    assert alert["source"]["transition"] == "publish"
    assert alert["source"]["uid"] == api.content.get_uuid(document)
    assert alert["source"]["path"] == "/plone/timetable"
    assert alert["source"]["actor"] == "test_user_1_"
    assert "Published" in alert["message"]


def test_audience_of_published_document_includes_anonymous(document):
    publish(document)
    [alert] = pending_alerts()
    assert "Anonymous" in alert["audience"]


def test_audience_of_private_document_is_what_the_catalog_indexes(portal, document):
    with api.env.adopt_roles(["Manager"]):
        api.content.transition(document, transition="submit")
    [alert] = pending_alerts()
    [brain] = api.content.find(UID=api.content.get_uuid(document), unrestricted=True)
    indexed = portal.portal_catalog.getIndexDataForRID(brain.getRID())["allowedRolesAndUsers"]
    assert alert["audience"] == sorted(indexed)
    assert "Anonymous" not in alert["audience"]
    assert "Member" not in alert["audience"]


def test_no_alert_when_alerts_are_switched_off(document):
    api.portal.set_registry_record("collective.eduhub_alerts.enabled", False)
    publish(document)
    assert pending_alerts() == []
