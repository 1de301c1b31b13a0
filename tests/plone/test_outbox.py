"""The durable outbox: alerts survive a Redis outage and are pushed once."""

from plone import api

from collective.eduhub_alerts.flusher import OutboxFlusher
from collective.eduhub_alerts.flusher import flush_all
from collective.eduhub_alerts.flusher import start_flusher
from collective.eduhub_alerts.outbox import Outbox
from collective.eduhub_alerts.publisher import flush
from collective.eduhub_alerts.publisher import push

from devstack.processes import free_port
from devstack.processes import wait_until

import pytest
import threading
import transaction


@pytest.fixture(autouse=True)
def _one_alert_per_document(functional_portal, set_record):
    """Publishing a new document alerts once: for its publication."""
    set_record("alert_events", {"workflow"})


@pytest.fixture
def redis_down(monkeypatch, redis_url):
    """Point the add-on at a port where no Redis listens; undo() brings it back."""

    class Outage:
        def __init__(self):
            monkeypatch.setenv("EDUHUB_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")

        def end(self):
            monkeypatch.setenv("EDUHUB_REDIS_URL", redis_url)

    return Outage


def publish_new_document(site, doc_id: str):
    with api.env.adopt_roles(["Manager"]):
        doc = api.content.create(container=site, type="Document", id=doc_id, title=doc_id)
        api.content.transition(doc, transition="publish")
    transaction.commit()
    return doc


def outbox_size(site) -> int:
    transaction.begin()  # see what other transactions committed
    return len(Outbox(site, create=False))


def test_pushed_alert_leaves_the_outbox(site, stream_alerts):
    publish_new_document(site, "notice")
    assert len(stream_alerts()) == 1
    assert outbox_size(site) == 0


def test_aborted_transaction_leaves_nothing_in_the_outbox(site, stream_alerts):
    with api.env.adopt_roles(["Manager"]):
        doc = api.content.create(container=site, type="Document", id="draft", title="Draft")
        api.content.transition(doc, transition="publish")
    transaction.abort()
    assert outbox_size(site) == 0
    assert stream_alerts() == []


def test_change_commits_and_alert_waits_in_outbox_while_redis_is_down(
    site, stream_alerts, redis_down, caplog
):
    redis_down()
    doc = publish_new_document(site, "exam-rooms")
    transaction.begin()
    assert api.content.get_state(doc) == "published"
    assert outbox_size(site) == 1
    assert "1 alert(s) kept in the outbox" in caplog.text
    assert stream_alerts() == []


def test_backlog_is_pushed_in_order_by_the_next_commit_after_redis_returns(
    site, stream_alerts, redis_down
):
    outage = redis_down()
    publish_new_document(site, "first")
    publish_new_document(site, "second")
    outage.end()
    publish_new_document(site, "third")
    urls = [alert["url"].rsplit("/", 1)[-1] for _, alert in stream_alerts()]
    assert urls == ["first", "second", "third"]
    assert outbox_size(site) == 0


def test_periodic_flush_pushes_the_backlog(site, stream_alerts, redis_down):
    outage = redis_down()
    publish_new_document(site, "timetable")
    assert flush_all(site._p_jar.db()) == 0  # still down: nothing lost, nothing pushed
    assert outbox_size(site) == 1
    outage.end()
    assert flush_all(site._p_jar.db()) == 1
    assert len(stream_alerts()) == 1
    assert outbox_size(site) == 0


def test_flusher_thread_drains_the_outbox(site, stream_alerts, redis_down):
    outage = redis_down()
    publish_new_document(site, "canteen-menu")
    outage.end()
    flusher = OutboxFlusher(site._p_jar.db(), interval=0.05)
    flusher.start()
    try:
        wait_until(lambda: len(stream_alerts()) == 1, timeout=10, what="the flusher's push")
    finally:
        flusher.stop()
        flusher.join(5)
    assert outbox_size(site) == 0


def test_flusher_is_not_started_when_switched_off(monkeypatch):
    monkeypatch.setenv("EDUHUB_OUTBOX_FLUSH_INTERVAL", "0")
    before = threading.active_count()
    start_flusher(type("DatabaseOpened", (), {"database": None})())
    assert threading.active_count() == before


def test_instances_flushing_the_same_outbox_push_each_alert_once(
    site, stream_alerts, redis_down
):
    outage = redis_down()
    for doc_id in ("a", "b", "c"):
        publish_new_document(site, doc_id)
    outage.end()
    db, path = site._p_jar.db(), site.getPhysicalPath()
    instances = [threading.Thread(target=flush, args=(db, path)) for _ in range(3)]
    for instance in instances:
        instance.start()
    for instance in instances:
        instance.join(30)
    ids = [alert["id"] for _, alert in stream_alerts()]
    assert len(ids) == 3 == len(set(ids))
    assert outbox_size(site) == 0


def test_pushing_an_alert_twice_appends_it_once(sample_alert, stream_alerts):
    assert push([sample_alert]) == 1
    assert push([sample_alert]) == 0
    assert len(stream_alerts()) == 1


def test_full_outbox_drops_the_new_alert_but_keeps_the_change(
    site, stream_alerts, redis_down, monkeypatch, caplog
):
    redis_down()
    monkeypatch.setenv("EDUHUB_OUTBOX_MAX_SIZE", "1")
    publish_new_document(site, "kept")
    doc = publish_new_document(site, "dropped")
    transaction.begin()
    assert api.content.get_state(doc) == "published"
    assert outbox_size(site) == 1
    assert "dropped: the outbox holds 1 undelivered alerts (EDUHUB_OUTBOX_MAX_SIZE)" in caplog.text


# --- @alerts-outbox: what site admins see and do ------------------------------


@pytest.fixture
def admin_api(request_factory):
    from plone.app.testing import SITE_OWNER_NAME
    from plone.app.testing import SITE_OWNER_PASSWORD

    return request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD))


def test_site_admin_sees_the_backlog_and_pushes_it(site, admin_api, stream_alerts, redis_down):
    outage = redis_down()
    publish_new_document(site, "sports-day")
    backlog = admin_api.get("/@alerts-outbox").json()
    assert backlog["items_total"] == 1
    assert backlog["items"][0]["topic"] == "workflow.publish"

    still_down = admin_api.post("/@alerts-outbox")
    assert still_down.status_code == 503
    assert still_down.json() == {"pushed": 0, "remaining": 1}

    outage.end()
    pushed = admin_api.post("/@alerts-outbox")
    assert pushed.json() == {"pushed": 1, "remaining": 0}
    assert len(stream_alerts()) == 1


def test_editors_may_not_see_the_outbox(site, request_factory):
    editor = request_factory(basic_auth=("editor", "secret-editor"))
    assert editor.get("/@alerts-outbox").status_code == 401
