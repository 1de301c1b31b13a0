"""Alerts reach Redis only after the transaction commits (functional layer:
real commits, and real HTTP requests through the WSGI server)."""

from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

from devstack.processes import free_port

import pytest
import transaction


@pytest.fixture
def document(site, committed, redis_client):
    doc = committed(
        lambda: api.content.create(container=site, type="Document", id="exams", title="Exam dates")
    )
    redis_client.flushdb()  # forget its content.added alert
    return doc


@pytest.fixture
def manager_session(request_factory):
    return request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD))


def test_committed_transition_is_pushed_once(document, stream_alerts):
    with api.env.adopt_roles(["Manager"]):
        api.content.transition(document, transition="publish")
    assert stream_alerts() == []  # not before the commit
    transaction.commit()
    [(_, alert)] = stream_alerts()
    assert alert["topic"] == "workflow.publish"
    assert alert["source"]["uid"] == api.content.get_uuid(document)


def test_alert_not_sent_when_transaction_aborts(document, stream_alerts):
    with api.env.adopt_roles(["Manager"]):
        api.content.transition(document, transition="publish")
    transaction.abort()
    transaction.commit()
    assert stream_alerts() == []


def test_retried_transaction_publishes_only_the_final_attempt(document, stream_alerts):
    # What ZPublisher does on a ConflictError: abort, then run the request again.
    for _attempt in range(2):
        transaction.begin()
        with api.env.adopt_roles(["Manager"]):
            api.content.transition(document, transition="publish")
        if _attempt == 0:
            transaction.abort()
    transaction.commit()
    assert len(stream_alerts()) == 1


def test_publish_over_rest_api_reaches_the_stream(document, manager_session, stream_alerts):
    response = manager_session.post("/exams/@workflow/publish")
    assert response.status_code == 200, response.text
    [(stream_id, alert)] = stream_alerts()
    assert alert["url"].endswith("/plone/exams")
    assert alert["source"]["actor"] == SITE_OWNER_NAME
    assert alert["source"]["review_state"] == "published"


class RefusingVote:
    """A resource manager that votes no, as a storage does on a conflict."""

    sortKey = staticmethod(lambda: "~last")

    def __init__(self):
        transaction.get().join(self)

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_finish = tpc_abort = abort

    def tpc_vote(self, txn):
        raise RuntimeError("vote refused")


def test_nothing_is_pushed_when_the_commit_fails(document, stream_alerts):
    with api.env.adopt_roles(["Manager"]):
        api.content.transition(document, transition="publish")
    RefusingVote()
    with pytest.raises(RuntimeError, match="vote refused"):
        transaction.commit()
    transaction.abort()
    assert stream_alerts() == []


def test_failure_after_the_push_never_duplicates_the_alert(
    document, stream_alerts, monkeypatch, caplog
):
    from collective.eduhub_alerts.flusher import flush_all
    from collective.eduhub_alerts.outbox import Outbox

    def broken_remove(self, ids):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(Outbox, "remove", broken_remove)
        with api.env.adopt_roles(["Manager"]):
            api.content.transition(document, transition="publish")
        transaction.commit()
    assert "pushing alerts after commit failed" in caplog.text
    assert len(stream_alerts()) == 1
    flush_all(document._p_jar.db())  # the entry left behind is pushed again...
    assert len(stream_alerts()) == 1  # ...and Redis drops the repeat
