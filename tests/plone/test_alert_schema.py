"""The add-on builds and validates alerts against the shared JSON Schema."""

from collective.eduhub_alerts.alert import InvalidAlert
from collective.eduhub_alerts.alert import make_alert
from collective.eduhub_alerts.alert import validate_alert

import pytest


def test_sample_alert_is_valid(sample_alert):
    assert validate_alert(sample_alert) is sample_alert


def test_made_alert_has_id_version_and_utc_timestamp():
    alert = make_alert(topic="manual", title="Fire drill", audience=["Member", "Member"])
    assert alert["version"] == 1
    assert len(alert["id"]) == 32
    assert alert["created_at"].endswith("Z")
    assert alert["audience"] == ["Member"]
    assert alert["routes"] == {"websocket": True, "slack": []}


def test_each_alert_gets_its_own_id():
    first, second = (make_alert(topic="manual", title="x", audience=["Member"]) for _ in "ab")
    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"severity": "loud"}, "severity"),
        ({"topic": "Not A Topic"}, "topic"),
        ({"audience": []}, "audience"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"source": {"uid": 5}}, "source.uid"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"extra": True}, ""),
    ],
)
def test_invalid_alert_error_names_the_field(sample_alert, change, field):
    with pytest.raises(InvalidAlert) as info:
        validate_alert({**sample_alert, **change})
    assert info.value.field == field


def test_missing_required_field_is_named(sample_alert):
    del sample_alert["title"]
    with pytest.raises(InvalidAlert) as info:
        validate_alert(sample_alert)
    assert info.value.field == "title"
    assert "required" in str(info.value)
