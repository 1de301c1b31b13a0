"""Content added, modified and removed: one alert per object per transaction."""

from plone import api
from zope.event import notify
from zope.lifecycleevent import ObjectModifiedEvent

import pytest


def topics(stream_alerts):
    return [(alert["topic"], alert["source"].get("path")) for _, alert in stream_alerts()]


@pytest.fixture
def folder(site, committed, set_record, stream_alerts, redis_client):
    folder = committed(lambda: api.content.create(container=site, type="Folder", id="news"))
    redis_client.flushdb()  # start each test with an empty stream
    return folder


def test_adding_content_alerts_once(folder, committed, stream_alerts):
    committed(lambda: api.content.create(container=folder, type="Document", id="a", title="A"))
    assert topics(stream_alerts) == [("content.added", "/plone/news/a")]
    [(_, alert)] = stream_alerts()
    assert alert["title"] == "Added: A"
    assert alert["message"] == "**A** (Page) was added by test_user_1_."


def test_several_modified_events_in_one_save_alert_once(folder, committed, stream_alerts):
    doc = committed(lambda: api.content.create(container=folder, type="Document", id="b"))
    stream_before = len(stream_alerts())

    def edit():
        doc.title = "B, revised"
        notify(ObjectModifiedEvent(doc))
        notify(ObjectModifiedEvent(doc))

    committed(edit)
    new = stream_alerts()[stream_before:]
    assert [(a["topic"], a["title"]) for _, a in new] == [("content.modified", "Changed: B, revised")]


def test_adding_a_child_does_not_alert_about_its_folder(folder, committed, stream_alerts):
    committed(lambda: api.content.create(container=folder, type="Document", id="c"))
    assert ("content.modified", "/plone/news") not in topics(stream_alerts)


def test_sharing_changes_do_not_alert(folder, committed, stream_alerts):
    from plone.app.workflow.events import LocalrolesModifiedEvent

    committed(lambda: notify(LocalrolesModifiedEvent(folder, folder.REQUEST)))
    assert stream_alerts() == []


def test_removing_content_alerts_with_its_audience_before_removal(
    folder, committed, stream_alerts
):
    doc = committed(lambda: api.content.create(container=folder, type="Document", id="d"))
    audience_before = api.content.find(UID=api.content.get_uuid(doc), unrestricted=True)
    committed(lambda: api.content.delete(doc))
    removed = [a for _, a in stream_alerts() if a["topic"] == "content.removed"]
    [alert] = removed
    assert alert["severity"] == "warning"
    assert alert["source"]["path"] == "/plone/news/d"
    assert alert["audience"]
    assert audience_before


def test_renaming_is_not_a_removal(folder, committed, stream_alerts):
    doc = committed(lambda: api.content.create(container=folder, type="Document", id="e"))
    committed(lambda: api.content.rename(obj=doc, new_id="e2"))
    assert "content.removed" not in [topic for topic, _ in topics(stream_alerts)]


def test_added_and_removed_in_one_transaction_alerts_nothing(folder, committed, stream_alerts):
    def add_and_remove():
        doc = api.content.create(container=folder, type="Document", id="f")
        api.content.delete(doc)

    committed(add_and_remove)
    assert stream_alerts() == []


def test_added_and_published_in_one_transaction(folder, committed, stream_alerts):
    def add_and_publish():
        doc = api.content.create(container=folder, type="Document", id="g")
        api.content.transition(doc, transition="publish")

    committed(add_and_publish)
    assert [topic for topic, _ in topics(stream_alerts)] == ["content.added", "workflow.publish"]


def test_events_switched_off_in_settings_do_not_alert(
    folder, committed, stream_alerts, set_record
):
    set_record("alert_events", {"workflow"})
    committed(lambda: api.content.create(container=folder, type="Document", id="h"))
    assert stream_alerts() == []


def test_only_chosen_types_alert(folder, committed, stream_alerts, set_record):
    set_record("portal_types", ["News Item"])
    committed(lambda: api.content.create(container=folder, type="Document", id="i"))
    committed(lambda: api.content.create(container=folder, type="News Item", id="j"))
    assert topics(stream_alerts) == [("content.added", "/plone/news/j")]


def test_removing_the_whole_site_alerts_nobody(site, folder, committed, stream_alerts):
    from OFS.event import ObjectWillBeRemovedEvent
    from zope.container.contained import dispatchToSublocations

    committed(lambda: api.content.create(container=folder, type="Document", id="k"))
    stream_before = len(stream_alerts())
    event = ObjectWillBeRemovedEvent(site, site.aq_parent, site.getId())
    notify(event)
    dispatchToSublocations(site, event)
    import transaction

    transaction.commit()  # the events fired; the site itself stays for the check
    assert len(stream_alerts()) == stream_before
