"""Each user switches live alerts off and on for themselves."""

import pytest


@pytest.fixture
def student(request_factory):
    return request_factory(basic_auth=("student", "secret-student"))


def test_live_alerts_are_on_by_default(site, student):
    assert student.get("/@alerts-preferences").json() == {"muted": False}
    assert student.get("/@alerts-token").json()["muted"] is False


def test_a_user_mutes_and_unmutes_live_alerts(site, student, request_factory):
    response = student.patch("/@alerts-preferences", json={"muted": True})
    assert response.status_code == 200, response.text
    assert response.json() == {"muted": True}
    assert student.get("/@alerts-token").json()["muted"] is True
    # Only their own: others are unaffected.
    editor = request_factory(basic_auth=("editor", "secret-editor"))
    assert editor.get("/@alerts-preferences").json() == {"muted": False}
    assert student.patch("/@alerts-preferences", json={"muted": False}).json() == {"muted": False}


@pytest.mark.parametrize("body", [{"muted": "yes"}, {"sound": True}, ["muted"]])
def test_bad_preferences_are_a_400_naming_the_field(site, student, body):
    response = student.patch("/@alerts-preferences", json=body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("muted:")


def test_anonymous_has_no_preferences(site, request_factory):
    assert request_factory().get("/@alerts-preferences").status_code == 401
