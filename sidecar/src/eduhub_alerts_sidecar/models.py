"""What goes over the wire: alerts (validated against the shared JSON Schema),
client -> server messages (pydantic) and server -> client frames.

Frames (JSON text, compact), see sidecar/README.md "WebSocket protocol":

- ``{"type":"welcome","connection_id":"...","user":"<sub>","heartbeat":25}``
- ``{"type":"subscribed","topics":[...]}`` (plus ``"recovered":true|false``
  after a ``since`` replay) and ``{"type":"unsubscribed","topics":[...]}``;
  in both, ``topics`` is the connection's complete subscription list after the change
- ``{"type":"alert","id":"<stream id>","alert":{...}}``
- ``{"type":"error","code":"...","message":"..."}``
- ``{"type":"refreshed","expires":"2026-12-03T10:15:00Z"}``
- ``{"type":"pong"}``
"""

from collections.abc import Mapping
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from .stream_ids import parse_stream_id

import copy
import json
import re
import secrets
import time


SCHEMA_RESOURCE = "alert.v1.schema.json"

# A subscription pattern: dotted segments as in alert topics, where a whole
# segment may be "*" (matching exactly one segment).
TOPIC_PATTERN_RE = re.compile(r"^(\*|[a-z0-9_-]+)(\.(\*|[a-z0-9_-]+))*$")
TOPIC_PATTERN_MAX_LENGTH = 200


# --- alerts -----------------------------------------------------------------


class InvalidAlert(ValueError):
    """An alert that does not satisfy ``alert.v1.schema.json``.

    ``field`` is the dotted path of the offending field (``"source.path"``,
    ``"audience.0"``), or ``""`` when the document as a whole is wrong
    (not JSON, not an object).
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@cache
def alert_schema() -> dict:
    """The alert JSON Schema, loaded once from the package data."""
    text = resources.files(__package__).joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _alert_validator() -> Draft202012Validator:
    # Built once: compiling the schema costs far more than validating with it.
    schema = alert_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _error_field(error) -> str:
    path = [str(part) for part in error.absolute_path]
    # For these two the interesting name is not in the path but in the instance.
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [name for name in error.validator_value if name not in error.instance]
        path += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = set(error.schema.get("properties", {}))
        extra = sorted(name for name in error.instance if name not in known)
        path += extra[:1]
    return ".".join(path)


def validate_alert(alert: Any) -> dict:
    """Return ``alert`` unchanged if it is a valid version 1 alert.

    Raises ``InvalidAlert`` naming the (most relevant) bad field otherwise.
    """
    error = best_match(_alert_validator().iter_errors(alert))
    if error is not None:
        raise InvalidAlert(_error_field(error), error.message)
    return alert


# Fields a producer may leave out of POST /alerts: the sidecar fills them.
PRODUCER_DEFAULTED_FIELDS = ("id", "version", "created_at")


def new_alert_id() -> str:
    """32 hex digits: 12 of milliseconds since the epoch, then 20 random — the
    form Plone's ids have: unique, and sortable by creation time."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def complete_producer_alert(alert: Any) -> Any:
    """Fill ``id``, ``version`` and ``created_at`` when a producer left them out.

    Anything that is not an object is returned as it is, for
    ``validate_alert`` to refuse. A producer that retries should send its
    own ``id``: it is the idempotency key.
    """
    if not isinstance(alert, dict):
        return alert
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    defaults = {"id": new_alert_id(), "version": 1, "created_at": now}
    return {**defaults, **alert}


@cache
def producer_alert_schema() -> dict:
    """The alert schema as ``POST /alerts`` accepts it (for OpenAPI): the
    fields the sidecar fills are optional."""
    schema = copy.deepcopy(alert_schema())
    schema["required"] = [
        name for name in schema["required"] if name not in PRODUCER_DEFAULTED_FIELDS
    ]
    return schema


def routed_to_websocket(alert: Mapping[str, Any]) -> bool:
    """Whether a (valid) alert goes to browsers.

    ``routes.websocket`` defaults to true: browsers are the default channel;
    a producer opts out explicitly (e.g. Slack-only alerts).
    """
    return alert.get("routes", {}).get("websocket", True) is not False


def visible_to(alert: Mapping[str, Any], principals: frozenset[str]) -> bool:
    """Whether someone with ``principals`` may see a (valid) alert: a set intersection."""
    return not principals.isdisjoint(alert["audience"])


def parse_alert(raw: str | bytes) -> dict:
    """Decode the JSON text of an alert and validate it (``InvalidAlert`` if not)."""
    try:
        alert = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidAlert("", f"not valid JSON: {exc}") from None
    return validate_alert(alert)


# --- client -> server -------------------------------------------------------


def _check_topic_pattern(value: str) -> str:
    if len(value) > TOPIC_PATTERN_MAX_LENGTH or not TOPIC_PATTERN_RE.match(value):
        raise ValueError(
            "not a topic pattern: dotted lower-case segments such as 'workflow.publish', "
            "where a segment may be '*'"
        )
    return value


def _check_stream_id(value: str) -> str:
    parse_stream_id(value)  # raises ValueError saying what is wrong
    return value


TopicPattern = Annotated[str, AfterValidator(_check_topic_pattern)]
StreamId = Annotated[str, AfterValidator(_check_stream_id)]


class ClientMessage(BaseModel):
    """Base of client messages: immutable, unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Subscribe(ClientMessage):
    """``{"type":"subscribe","topics":[...],"since":"<stream id>"}``.

    With ``since`` (the stream id of the last alert the client has), the
    missed alerts matching ``topics`` are replayed before live delivery.
    """

    type: Literal["subscribe"]
    topics: list[TopicPattern] = Field(min_length=1)
    since: StreamId | None = None


class Unsubscribe(ClientMessage):
    """``{"type":"unsubscribe","topics":[...]}``; unknown topics are ignored."""

    type: Literal["unsubscribe"]
    topics: list[TopicPattern] = Field(min_length=1)


class Refresh(ClientMessage):
    """``{"type":"refresh","token":"<jwt>"}``: a fresh ``@alerts-token`` for the same user."""

    type: Literal["refresh"]
    token: str = Field(min_length=1, max_length=16_384)


class Ping(ClientMessage):
    """``{"type":"ping"}``, answered with ``{"type":"pong"}``."""

    type: Literal["ping"]


CLIENT_MESSAGE_TYPES: dict[str, type[ClientMessage]] = {
    "subscribe": Subscribe,
    "unsubscribe": Unsubscribe,
    "refresh": Refresh,
    "ping": Ping,
}


class ProtocolError(ValueError):
    """A client message the server cannot act on; becomes an ``error`` frame.

    ``code`` is ``bad_request`` (not JSON, wrong shape, invalid field) or
    ``unknown_type``.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


def parse_client_message(text: str) -> ClientMessage:
    """Parse one text frame from a client; raise ``ProtocolError`` if unusable."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # deeply nested arrays exhaust the parser's stack
        raise ProtocolError("bad_request", "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_request", "type: a string is required")
    model = CLIENT_MESSAGE_TYPES.get(kind)
    if model is None:
        known = ", ".join(sorted(CLIENT_MESSAGE_TYPES))
        raise ProtocolError("unknown_type", f"unknown message type {kind[:50]!r}; known: {known}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("bad_request", _describe_validation_error(exc)) from None


# --- server -> client -------------------------------------------------------


def encode_frame(frame: Mapping[str, Any]) -> str:
    """Compact JSON text of a frame; the only encoder frames go through."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def welcome_frame(connection_id: str, user: str, heartbeat: float) -> dict:
    """First frame on every accepted connection."""
    return {"type": "welcome", "connection_id": connection_id, "user": user, "heartbeat": heartbeat}


def subscribed_frame(topics: list[str], *, recovered: bool | None = None) -> dict:
    """Answer to ``subscribe``: all topics the connection is now subscribed to.

    ``recovered`` only after a ``since`` replay: whether every missed alert
    was still in the stream.
    """
    frame: dict[str, Any] = {"type": "subscribed", "topics": topics}
    if recovered is not None:
        frame["recovered"] = recovered
    return frame


def unsubscribed_frame(topics: list[str]) -> dict:
    """Answer to ``unsubscribe``: all topics the connection is *still* subscribed to."""
    return {"type": "unsubscribed", "topics": topics}


# Fields that say who else may see an object (user and group ids of its
# local-role holders) and where Slack posts it: the sidecar needs them, the
# people it delivers to do not.
DELIVERY_FIELDS = frozenset({"audience", "routes"})


def for_readers(alert: Mapping[str, Any]) -> dict:
    """The alert as a reader receives it: without ``audience`` and ``routes``."""
    return {key: value for key, value in alert.items() if key not in DELIVERY_FIELDS}


def alert_frame(stream_id: str, alert: dict) -> dict:
    """One alert as readers see it (``for_readers``); ``id`` is its Redis stream id
    (the position ``since`` resumes from)."""
    return {"type": "alert", "id": stream_id, "alert": for_readers(alert)}


def error_frame(code: str, message: str) -> dict:
    """A problem with a client message; the connection stays open."""
    return {"type": "error", "code": code, "message": message}


def refreshed_frame(expires: str) -> dict:
    """Answer to a successful ``refresh``: the new expiry, ISO 8601 UTC like ``@alerts-token``."""
    return {"type": "refreshed", "expires": expires}


def pong_frame() -> dict:
    """Answer to an application-level ``ping``."""
    return {"type": "pong"}
