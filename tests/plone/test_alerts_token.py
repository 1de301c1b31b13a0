"""GET @alerts-token: the short-lived JWT the sidecar accepts."""

from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

from datetime import datetime
from datetime import timezone

import jwt
import pytest


def decode(token, secret):
    return jwt.decode(token, secret, algorithms=["HS256"], audience="eduhub-alerts")


def test_anonymous_gets_401(request_factory):
    response = request_factory().get("/@alerts-token")
    assert response.status_code == 401


def test_member_gets_read_only_token_with_catalog_principals(request_factory, alerts_secret):
    response = request_factory(basic_auth=("student", "secret-student")).get("/@alerts-token")
    assert response.status_code == 200, response.text
    body = response.json()
    claims = decode(body["token"], alerts_secret)
    assert claims["sub"] == "student"
    assert claims["scope"] == "alerts:read"
    assert set(claims["principals"]) >= {"user:student", "Member", "Authenticated", "Anonymous"}
    assert "Manager" not in claims["principals"]
    assert body["websocket_url"] == "ws://localhost:8090/ws"
    assert body["topics"] == ["*", "*.*", "*.*.*"]  # every topic, by default
    expires = datetime.fromisoformat(body["expires"])
    assert expires == datetime.fromtimestamp(claims["exp"], timezone.utc)
    lifetime = claims["exp"] - claims["iat"]
    assert 0 < lifetime <= 15 * 60


def test_manager_token_carries_write_scope(request_factory, alerts_secret):
    response = request_factory(basic_auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD)).get(
        "/@alerts-token"
    )
    claims = decode(response.json()["token"], alerts_secret)
    assert claims["scope"].split() == ["alerts:read", "alerts:write"]
    assert "Manager" in claims["principals"]


def test_websocket_url_and_lifetime_come_from_the_environment(
    request_factory, alerts_secret, monkeypatch
):
    monkeypatch.setenv("EDUHUB_WS_PUBLIC_URL", "wss://alerts.example.edu/ws")
    monkeypatch.setenv("EDUHUB_TOKEN_TTL", "60")
    body = request_factory(basic_auth=("editor", "secret-editor")).get("/@alerts-token").json()
    claims = decode(body["token"], alerts_secret)
    assert body["websocket_url"] == "wss://alerts.example.edu/ws"
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    "env, message",
    [
        ({"EDUHUB_ALERTS_SECRET": ""}, "EDUHUB_ALERTS_SECRET must be set"),
        ({"EDUHUB_ALERTS_SECRET": "short"}, "at least 32 characters"),
        ({"EDUHUB_TOKEN_TTL": "3600"}, "EDUHUB_TOKEN_TTL must be between 1 and 900"),
        ({"EDUHUB_TOKEN_TTL": "soon"}, "EDUHUB_TOKEN_TTL must be a whole number"),
    ],
)
def test_misconfiguration_answers_503_naming_the_setting(
    request_factory, monkeypatch, env, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    response = request_factory(basic_auth=("editor", "secret-editor")).get("/@alerts-token")
    assert response.status_code == 503
    assert message in response.json()["error"]["message"]


def test_secret_can_come_from_a_file(request_factory, monkeypatch, tmp_path, alerts_secret):
    path = tmp_path / "secret"
    path.write_text("f" * 40 + "\n")
    monkeypatch.setenv("EDUHUB_ALERTS_SECRET", "")
    monkeypatch.setenv("EDUHUB_ALERTS_SECRET_FILE", str(path))
    body = request_factory(basic_auth=("editor", "secret-editor")).get("/@alerts-token").json()
    assert decode(body["token"], "f" * 40)["sub"] == "editor"


def test_unreadable_secret_file_answers_503(request_factory, monkeypatch, tmp_path):
    monkeypatch.setenv("EDUHUB_ALERTS_SECRET", "")
    monkeypatch.setenv("EDUHUB_ALERTS_SECRET_FILE", str(tmp_path / "missing"))
    response = request_factory(basic_auth=("editor", "secret-editor")).get("/@alerts-token")
    assert response.status_code == 503
    assert "EDUHUB_ALERTS_SECRET_FILE cannot be read" in response.json()["error"]["message"]


def test_topics_for_pages_come_from_the_control_panel(site, set_record, request_factory):
    set_record("browser_topics", ["workflow.*", "manual"])
    body = request_factory(basic_auth=("editor", "secret-editor")).get("/@alerts-token").json()
    assert body["topics"] == ["workflow.*", "manual"]
