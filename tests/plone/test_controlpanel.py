"""One settings schema, two faces: Classic UI's form and Volto's @controlpanels."""

from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

import html
import pytest
import re
import transaction


PREFIX = "collective.eduhub_alerts"


@pytest.fixture
def manager(request_factory):
    return request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD))


@pytest.fixture
def classic(request_factory):
    return request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD), api=False)


def record(name):
    transaction.begin()
    return api.portal.get_registry_record(f"{PREFIX}.{name}")


# --- Volto: @controlpanels/eduhub-alerts ----------------------------------


def test_control_panel_is_listed_for_volto(site, manager):
    panels = manager.get("/@controlpanels").json()
    [panel] = [p for p in panels if p["@id"].endswith("/@controlpanels/eduhub-alerts")]
    assert panel["title"] == "EduHub Alerts"


def test_volto_reads_schema_and_values(site, manager):
    body = manager.get("/@controlpanels/eduhub-alerts").json()
    assert set(body["schema"]["properties"]) >= {
        "enabled", "alert_events", "portal_types", "transitions", "slack_routes",
        "severities", "websocket_url", "post_rate_per_minute",
    }
    assert body["data"]["enabled"] is True
    assert body["data"]["post_rate_per_minute"] == 20


def test_volto_saves_settings(site, manager):
    response = manager.patch(
        "/@controlpanels/eduhub-alerts",
        json={
            "slack_routes": ["workflow.* = C0123ABCD, @U0456EFGH"],
            "severities": ["workflow.retract = warning"],
            "websocket_url": "wss://alerts.school.example/ws",
        },
    )
    assert response.status_code == 204, response.text
    assert record("slack_routes") == ["workflow.* = C0123ABCD, @U0456EFGH"]
    assert record("websocket_url") == "wss://alerts.school.example/ws"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("slack_routes", ["workflow.* = #general"], "is no Slack channel, user or webhook"),
        ("slack_routes", ["workflow.* = webhook:Staff Room"], "such as webhook:staffroom"),
        ("slack_routes", ["workflow.* = webhook:"], "is no Slack channel, user or webhook"),
        ("slack_routes", ["workflow.*"], 'topic pattern = value'),
        ("severities", ["Workflow = warning"], "is no topic pattern"),
        ("severities", ["workflow.* = urgent"], "is no severity"),
        ("websocket_url", "http://example.org/ws", "starts with ws:// or wss://"),
    ],
)
def test_volto_rejects_bad_values_with_a_clear_message(site, manager, field, value, message):
    response = manager.patch("/@controlpanels/eduhub-alerts", json={field: value})
    assert response.status_code == 400
    errors = response.json()["message"]
    assert field in errors and message in errors


# --- Classic UI: @@eduhub-alerts-controlpanel -------------------------------


def authenticator(page: str) -> str:
    return re.search(r'name="_authenticator"[^>]*value="([^"]+)"', page).group(1)


def test_classic_form_shows_the_settings(site, classic):
    page = classic.get("/@@eduhub-alerts-controlpanel").text
    assert "EduHub Alerts" in page
    assert "Slack routes" in page and "Severity per topic" in page


def test_classic_form_saves_and_validates(site, classic):
    page = classic.get("/@@eduhub-alerts-controlpanel").text
    form = {
        "_authenticator": authenticator(page),
        "form.widgets.enabled:list": "selected",
        "form.widgets.slack_routes": "app.* = #general",
        "form.widgets.post_rate_per_minute": "20",
        "form.buttons.save": "Save",
    }
    rejected = html.unescape(classic.post("/@@eduhub-alerts-controlpanel", data=form).text)
    assert '"#general" is no Slack channel, user or webhook' in rejected
    page = classic.get("/@@eduhub-alerts-controlpanel").text
    assert "#general" not in page  # nothing was saved

    form["form.widgets.slack_routes"] = "app.* = C0APPS"
    classic.post("/@@eduhub-alerts-controlpanel", data=form)
    assert record("slack_routes") == ["app.* = C0APPS"]


def test_control_panel_needs_manage_portal(site, request_factory):
    editor = request_factory(basic_auth=("editor", "secret-editor"), api=False)
    response = editor.get("/@@eduhub-alerts-controlpanel", allow_redirects=False)
    assert response.status_code in (302, 401, 403)


# --- The settings take effect -------------------------------------------------


def test_slack_routes_and_severities_apply_to_alerts(
    site, committed, set_record, stream_alerts
):
    set_record("slack_routes", ["workflow.* = C0123ABCD", "workflow.publish = @U0456EFGH"])
    set_record("severities", ["workflow.publish = critical"])
    set_record("alert_events", {"workflow"})
    doc = committed(lambda: api.content.create(container=site, type="Document", id="x"))
    committed(lambda: api.content.transition(doc, transition="publish"))
    [(_, alert)] = stream_alerts()
    assert alert["severity"] == "critical"
    assert alert["routes"]["slack"] == [{"channel": "C0123ABCD"}, {"user": "U0456EFGH"}]


def test_webhook_targets_become_webhook_routes(site, committed, set_record, stream_alerts):
    set_record("slack_routes", ["workflow.* = C0123ABCD, webhook:staffroom",
                                "workflow.publish = webhook:head-office_2"])
    set_record("alert_events", {"workflow"})
    doc = committed(lambda: api.content.create(container=site, type="Document", id="x"))
    committed(lambda: api.content.transition(doc, transition="publish"))
    [(_, alert)] = stream_alerts()
    assert alert["routes"]["slack"] == [
        {"channel": "C0123ABCD"}, {"webhook": "staffroom"}, {"webhook": "head-office_2"}]


def test_volto_saves_webhook_routes_and_help_mentions_them(site, manager):
    response = manager.patch("/@controlpanels/eduhub-alerts",
                             json={"slack_routes": ["workflow.* = C0123ABCD, webhook:staffroom"]})
    assert response.status_code == 204, response.text
    assert record("slack_routes") == ["workflow.* = C0123ABCD, webhook:staffroom"]
    schema = manager.get("/@controlpanels/eduhub-alerts").json()["schema"]
    assert "webhook:staffroom" in schema["properties"]["slack_routes"]["description"]


@pytest.mark.parametrize("target", ["webhook:" + "x" * 41, "webhook:https://hooks.slack.com/x",
                                    "webhooks:staffroom", "WEBHOOK:staffroom"])
def test_malformed_webhook_targets_are_rejected(target):
    from collective.eduhub_alerts.interfaces import InvalidSetting, parse_slack_route

    with pytest.raises(InvalidSetting):
        parse_slack_route(f"workflow.* = {target}")


def test_websocket_url_from_the_control_panel_wins(site, set_record, request_factory):
    set_record("websocket_url", "wss://alerts.school.example/ws")
    body = request_factory(basic_auth=("editor", "secret-editor")).get("/@alerts-token").json()
    assert body["websocket_url"] == "wss://alerts.school.example/ws"


def test_message_templates_apply_to_alerts(site, committed, set_record, stream_alerts):
    set_record("alert_events", {"workflow"})
    set_record("templates", [
        "workflow.submit = Review needed: ${title}",
        "workflow.* = ${title} is now ${review_state_title} | Changed by ${user_fullname}: ${url}",
    ])
    doc = committed(lambda: api.content.create(container=site, type="Document", id="t", title="Rota"))
    committed(lambda: api.content.transition(doc, transition="submit"))
    committed(lambda: api.content.transition(doc, transition="publish"))
    (_, submitted), (_, published) = stream_alerts()
    assert submitted["title"] == "Review needed: Rota"
    assert submitted["message"].startswith("**Rota** is now *Pending review*")  # built-in
    assert published["title"] == "Rota is now Published"
    assert published["message"].endswith(doc.absolute_url())


def test_template_without_title_is_refused(site, manager):
    response = manager.patch(
        "/@controlpanels/eduhub-alerts", json={"templates": ["workflow.* = | just a message"]}
    )
    assert response.status_code == 400
    assert "Give a title template" in response.json()["message"]
