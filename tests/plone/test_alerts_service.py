"""@alerts: list the alerts you may see; send one by hand."""

from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

import pytest
import time
import transaction


@pytest.fixture
def manager(request_factory):
    return request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD))


@pytest.fixture
def student(request_factory):
    return request_factory(basic_auth=("student", "secret-student"))


@pytest.fixture
def editor(request_factory):
    return request_factory(basic_auth=("editor", "secret-editor"))


@pytest.fixture
def alerts(site, committed, set_record, redis_client):
    """A private page, submitted (editors see it), and a published one (everyone),
    in that order and with different ``created_at`` (the ``since`` filter
    compares them)."""
    set_record("alert_events", {"workflow"})

    def submit():
        private = api.content.create(container=site, type="Document", id="minutes")
        api.content.transition(private, transition="submit")

    def publish():
        public = api.content.create(container=site, type="Document", id="news")
        api.content.transition(public, transition="publish")

    committed(submit)
    # created_at has millisecond precision: start the second alert in the next one.
    first_millisecond = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == first_millisecond:
        pass
    committed(publish)


# --- GET ----------------------------------------------------------------------


def test_list_shows_only_what_the_user_may_see_newest_first(alerts, student, editor):
    seen_by_student = student.get("/@alerts").json()
    assert [a["url"].rsplit("/", 1)[-1] for a in seen_by_student["items"]] == ["news"]
    seen_by_editor = editor.get("/@alerts").json()
    assert [a["url"].rsplit("/", 1)[-1] for a in seen_by_editor["items"]] == ["news", "minutes"]
    assert seen_by_editor["items_total"] == 2
    item = seen_by_editor["items"][0]
    assert item["@id"].endswith(f"/@alerts/{item['id']}")
    assert item["stream_id"]


def test_readers_do_not_see_who_else_may_see_an_object_nor_its_slack_routes(
    alerts, student, manager
):
    [read] = student.get("/@alerts").json()["items"]
    assert read["title"] and "audience" not in read and "routes" not in read
    assert "audience" not in student.get(f"/@alerts/{read['id']}").json()
    # Those who may send alerts (and choose audiences and routes) see them whole.
    for item in manager.get("/@alerts").json()["items"]:
        assert item["audience"] and "websocket" in item["routes"]


def test_list_filters_by_topic_severity_and_since(alerts, editor, stream_alerts):
    assert [a["topic"] for a in editor.get("/@alerts?topic=workflow.submit").json()["items"]] == [
        "workflow.submit"
    ]
    assert [a["topic"] for a in editor.get("/@alerts?topic=workflow.*").json()["items"]] == [
        "workflow.publish", "workflow.submit",
    ]
    assert editor.get("/@alerts?severity=success").json()["items_total"] == 1
    assert editor.get("/@alerts?severity=info,success").json()["items_total"] == 2
    first_created = stream_alerts()[0][1]["created_at"]
    assert editor.get(f"/@alerts?since={first_created}").json()["items_total"] == 1


def test_list_is_batched(alerts, editor):
    page = editor.get("/@alerts?b_size=1").json()
    assert len(page["items"]) == 1 and page["items_total"] == 2
    assert "next" in page["batching"]


@pytest.mark.parametrize(
    "query, field",
    [("severity=loud", "severity"), ("since=yesterday", "since"), ("topic=workflow..x", "topic")],
)
def test_bad_filter_is_a_400_naming_it(site, editor, query, field):
    response = editor.get(f"/@alerts?{query}")
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}:")


def test_one_alert_by_id(alerts, editor, student):
    item = editor.get("/@alerts?topic=workflow.submit").json()["items"][0]
    assert editor.get(f"/@alerts/{item['id']}").json()["title"] == item["title"]
    assert student.get(f"/@alerts/{item['id']}").status_code == 404


def test_anonymous_may_not_list(site, request_factory):
    assert request_factory().get("/@alerts").status_code == 401


def test_list_answers_503_when_redis_is_down(site, editor, monkeypatch):
    from devstack.processes import free_port

    monkeypatch.setenv("EDUHUB_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert editor.get("/@alerts").status_code == 503


# --- POST ---------------------------------------------------------------------


def test_manager_sends_an_alert(site, manager, stream_alerts):
    response = manager.post(
        "/@alerts",
        json={"title": "Fire drill at 10:00", "message": "Meet in the *yard*.", "severity": "warning"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == body["@id"]
    assert body["topic"] == "manual" and body["audience"] == ["Authenticated"]
    [(_, pushed)] = stream_alerts()
    assert pushed["id"] == body["id"]


def test_alert_about_content_goes_to_its_viewers(site, committed, manager, stream_alerts):
    doc = committed(lambda: api.content.create(container=site, type="Document", id="rota"))
    response = manager.post(
        "/@alerts", json={"title": "Rota changed", "context": api.content.get_uuid(doc)}
    )
    assert response.status_code == 201
    pushed = stream_alerts()[-1][1]
    assert pushed["url"] == doc.absolute_url()
    assert "Authenticated" not in pushed["audience"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": ""}, "title"),
        ({"title": "x", "severity": "loud"}, "severity"),
        ({"title": "x", "topic": "Bad Topic"}, "topic"),
        ({"title": "x", "slack": [{"room": "x"}]}, "slack"),
        ({"title": "x", "colour": "red"}, "colour"),
        ({"title": "x", "context": "no-such-uid"}, "context"),
        ({"title": "x", "audience": None}, "audience"),
    ],
)
def test_bad_alert_is_a_400_naming_the_field(site, manager, body, field):
    response = manager.post("/@alerts", json=body)
    assert response.status_code == 400
    assert field in response.json()["message"]


def test_editor_may_not_send_by_default(site, editor):
    assert editor.post("/@alerts", json={"title": "x"}).status_code == 401


def test_editors_may_send_once_granted_the_permission(site, editor):
    site.manage_permission(
        "collective.eduhub_alerts: Send alerts", ["Manager", "Site Administrator", "Editor"]
    )
    transaction.commit()
    assert editor.post("/@alerts", json={"title": "x"}).status_code == 201


def test_rate_limit_answers_429_with_retry_after(site, manager, set_record, stream_alerts):
    set_record("post_rate_per_minute", 2)
    statuses = [manager.post("/@alerts", json={"title": f"#{i}"}) for i in range(3)]
    assert [r.status_code for r in statuses] == [201, 201, 429]
    assert 1 <= int(statuses[-1].headers["Retry-After"]) <= 60
    assert len(stream_alerts()) == 2


def test_disabled_site_refuses_manual_alerts(site, manager, set_record):
    set_record("enabled", False)
    response = manager.post("/@alerts", json={"title": "x"})
    assert response.status_code == 400
    assert "switched off" in response.json()["message"]


def test_body_that_is_not_a_json_object_is_a_400(site, manager):
    response = manager.post("/@alerts", json=["a", "list"])
    assert response.status_code == 400
    assert "JSON object" in response.json()["message"]
