"""The content-rule action "Send real-time alert", set up the way Volto does
it (plone.restapi's content-rules API) and the way Classic UI does it."""

from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

from collective.eduhub_alerts.contentrules.action import ELEMENT

import pytest


@pytest.fixture
def manager(request_factory):
    return request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD))


@pytest.fixture
def rule_id(site, manager, set_record):
    set_record("alert_events", set())  # only the rule alerts
    response = manager.post(
        "/@controlpanels/content-rules",
        json={"title": "Tell everyone", "event": "Workflow state changed"},
    )
    assert response.status_code == 201, response.text
    return response.json()["@id"].rsplit("/", 1)[-1]


def add_alert_action(manager, rule_id, **fields):
    return manager.post(
        f"/@controlpanels/content-rules/{rule_id}/action", json={"type": ELEMENT, **fields}
    )


def test_rule_action_sends_an_interpolated_alert(site, manager, rule_id, committed, stream_alerts):
    response = add_alert_action(
        manager, rule_id,
        topic="rule.state_changed",
        title="${title} is now ${review_state_title}",
        message="Changed by ${user_fullname}: ${url}",
        severity="warning",
        slack=["C0RULES", "@U0HEAD", "webhook:staffroom"],
    )
    assert response.status_code in (200, 201), response.text
    assert manager.post(f"/@content-rules/{rule_id}").status_code in (200, 204)

    doc = committed(
        lambda: api.content.create(container=site, type="Document", id="rota", title="Staff rota")
    )
    committed(lambda: api.content.transition(doc, transition="publish"))
    [(_, alert)] = stream_alerts()
    assert alert["topic"] == "rule.state_changed"
    assert alert["title"] == "Staff rota is now Published"
    assert alert["message"].startswith("Changed by ")
    assert alert["message"].endswith(doc.absolute_url())
    assert alert["severity"] == "warning"
    assert alert["routes"]["slack"] == [
        {"channel": "C0RULES"}, {"user": "U0HEAD"}, {"webhook": "staffroom"}]
    assert "Anonymous" in alert["audience"]


def test_volto_gets_the_action_form_schema(site, manager, rule_id):
    rule = manager.get(f"/@controlpanels/content-rules/{rule_id}").json()
    [addable] = [a for a in rule["addable_actions"] if a["addview"] == ELEMENT]
    assert addable["title"] == "Send real-time alert"
    assert set(addable["@schema"]["properties"]) == {"topic", "title", "message", "severity", "slack"}
    assert "webhook:staffroom" in addable["@schema"]["properties"]["slack"]["description"]


@pytest.mark.parametrize("target", ["webhook:Staff Room", "webhook:"])
def test_classic_ui_rejects_malformed_webhook_targets(site, rule_id, request_factory, target):
    browser = request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD), api=False)
    page = browser.get(f"/++rule++{rule_id}/+action/{ELEMENT}")
    token = __import__("re").search(r'name="_authenticator"[^>]*value="([^"]+)"', page.text)
    rejected = browser.post(
        f"/++rule++{rule_id}/+action/{ELEMENT}",
        data={
            "_authenticator": token.group(1),
            "form.widgets.topic": "rule.x",
            "form.widgets.title": "${title}",
            "form.widgets.severity:list": "info",
            "form.widgets.slack": target,
            "form.buttons.save": "Save",
        },
    )
    assert "such as webhook:staffroom" in __import__("html").unescape(rejected.text)


def test_webhook_targets_become_webhook_routes():
    from collective.eduhub_alerts.contentrules.action import slack_routes

    assert slack_routes(["webhook:staffroom", "C0RULES"]) == [
        {"webhook": "staffroom"}, {"channel": "C0RULES"}]


def test_rule_action_is_listed_and_summarised(site, manager, rule_id):
    add_alert_action(manager, rule_id, topic="rule.x", title="${title}", severity="info")
    rule = manager.get(f"/@controlpanels/content-rules/{rule_id}").json()
    [action] = rule["actions"]
    assert action["title"] == "Send real-time alert"
    assert 'Send a info alert "${title}" on rule.x' in action["summary"]


def test_classic_ui_add_form_validates(site, rule_id, request_factory):
    browser = request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD), api=False)
    page = browser.get(f"/++rule++{rule_id}/+action/{ELEMENT}")
    assert page.status_code == 200
    assert "Add a real-time alert action" in page.text
    token = __import__("re").search(r'name="_authenticator"[^>]*value="([^"]+)"', page.text)
    rejected = browser.post(
        f"/++rule++{rule_id}/+action/{ELEMENT}",
        data={
            "_authenticator": token.group(1),
            "form.widgets.topic": "Not A Topic",
            "form.widgets.title": "${title}",
            "form.widgets.severity:list": "info",
            "form.widgets.slack": "#general",
            "form.buttons.save": "Save",
        },
    )
    assert "Dotted lower-case words, e.g. rule.exam_published." in rejected.text
    assert "is no Slack channel, user or webhook" in __import__("html").unescape(rejected.text)


def test_uninstall_removes_the_action_from_rules(site, manager, rule_id):
    from plone.base.utils import get_installer
    from plone.contentrules.engine.interfaces import IRuleStorage
    from zope.component import getUtility

    import transaction

    add_alert_action(manager, rule_id, topic="rule.x", title="${title}", severity="info")
    transaction.begin()
    get_installer(site, site.REQUEST).uninstall_product("collective.eduhub_alerts")
    rule = getUtility(IRuleStorage)[rule_id]
    assert [a for a in rule.actions if a.element == ELEMENT] == []
    transaction.abort()
