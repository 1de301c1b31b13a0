"""Alert validation against the shared schema, and client message parsing."""

from eduhub_alerts_sidecar.models import (
    InvalidAlert,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    alert_schema,
    encode_frame,
    parse_alert,
    parse_client_message,
    validate_alert,
)

import json
import pytest


def test_sample_alert_is_valid(sample_alert):
    assert validate_alert(sample_alert) is sample_alert


def test_schema_is_the_shared_file():
    assert alert_schema()["title"] == "EduHub alert, version 1"


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda a: a.pop("title"), "title"),
        (lambda a: a.update(severity="fatal"), "severity"),
        (lambda a: a.update(version=2), "version"),
        (lambda a: a.update(audience=[]), "audience"),
        (lambda a: a.update(audience=["ok", 3]), "audience.1"),
        (lambda a: a["source"].update(path=7), "source.path"),
        (lambda a: a["source"].update(colour="red"), "source.colour"),
        (lambda a: a.update(extra=True), "extra"),
        (lambda a: a.update(topic="Not A Topic"), "topic"),
        (lambda a: a.update(created_at="2026-12-03T09:15:00+02:00"), "created_at"),
        (lambda a: a["routes"].update(slack=[{"channel": "C1", "user": "U1"}]), "routes.slack.0"),
    ],
)
def test_invalid_alert_names_the_bad_field(sample_alert, change, field):
    change(sample_alert)
    with pytest.raises(InvalidAlert) as info:
        validate_alert(sample_alert)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_alert_that_is_not_an_object_is_invalid_as_a_whole():
    with pytest.raises(InvalidAlert) as info:
        validate_alert(["not", "an", "object"])
    assert info.value.field == ""


@pytest.mark.parametrize("raw", ["{not json", b"\xff\xfe", "[" * 100_000])
def test_unparseable_alert_text_is_invalid(raw):
    with pytest.raises(InvalidAlert, match="not valid JSON") as info:
        parse_alert(raw)
    assert info.value.field == ""


def test_alert_text_is_parsed_and_validated(sample_alert):
    assert parse_alert(json.dumps(sample_alert).encode()) == sample_alert


def test_subscribe_message_is_parsed():
    message = parse_client_message(
        '{"type":"subscribe","topics":["workflow.*","manual"],"since":"1700000000000-0"}'
    )
    assert message == Subscribe(type="subscribe", topics=["workflow.*", "manual"],
                                since="1700000000000-0")


def test_unsubscribe_and_ping_are_parsed():
    assert isinstance(parse_client_message('{"type":"unsubscribe","topics":["a"]}'), Unsubscribe)
    assert isinstance(parse_client_message('{"type":"ping"}'), Ping)


@pytest.mark.parametrize(
    "text, code, message_start",
    [
        ("nope", "bad_request", "message is not valid JSON"),
        ("[" * 100_000, "bad_request", "message is not valid JSON"),
        ("[1, 2]", "bad_request", "message must be a JSON object"),
        ('{"topics": ["a"]}', "bad_request", "type: a string is required"),
        ('{"type": 5}', "bad_request", "type: a string is required"),
        ('{"type": "dance"}', "unknown_type", "unknown message type 'dance'"),
        ('{"type": "refresh"}', "bad_request", "token: Field required"),
        ('{"type": "refresh", "token": ""}', "bad_request", "token: String should have at least"),
        ('{"type": "subscribe"}', "bad_request", "topics: Field required"),
        ('{"type": "subscribe", "topics": []}', "bad_request",
         "topics: List should have at least 1"),
        ('{"type": "subscribe", "topics": "a"}', "bad_request",
         "topics: Input should be a valid list"),
        ('{"type": "subscribe", "topics": ["a..b"]}', "bad_request",
         "topics.0: not a topic pattern"),
        ('{"type": "subscribe", "topics": ["wf*"]}', "bad_request",
         "topics.0: not a topic pattern"),
        ('{"type": "subscribe", "topics": ["a"], "since": "yesterday"}', "bad_request",
         "since: not a stream id"),
        ('{"type": "ping", "extra": 1}', "bad_request", "extra: Extra inputs are not permitted"),
    ],
)
def test_unusable_client_message_raises_protocol_error(text, code, message_start):
    with pytest.raises(ProtocolError) as info:
        parse_client_message(text)
    assert info.value.code == code
    assert info.value.message.startswith(message_start), info.value.message


def test_topic_pattern_longer_than_200_characters_is_refused():
    pattern = ".".join(["segment"] * 30)
    with pytest.raises(ProtocolError, match="topics.0"):
        parse_client_message(json.dumps({"type": "subscribe", "topics": [pattern]}))


def test_frames_are_encoded_as_compact_utf8_json():
    frame = {"type": "error", "message": "Grüße"}
    assert encode_frame(frame) == '{"type":"error","message":"Grüße"}'
