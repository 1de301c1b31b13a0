"""The alert, version 1: building and validating it.

The JSON Schema file shipped beside this module is the single definition of
an alert (the sidecar validates against the same file).
"""

from datetime import datetime
from datetime import timezone
from functools import cache
from importlib import resources

import json
import jsonschema
import secrets
import time


ALERT_VERSION = 1
SEVERITIES = ("info", "success", "warning", "error", "critical")


class InvalidAlert(ValueError):
    """An alert does not match the schema. ``field`` names the offending
    field as a dotted path (``source.uid``, ``audience.0``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(
        resources.files(__package__).joinpath("alert.v1.schema.json").read_text("utf-8")
    )
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_alert(alert: dict) -> dict:
    """Return ``alert`` unchanged if it is a valid v1 alert, else raise
    :class:`InvalidAlert` for the first error (the one most relevant)."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(alert))
    if error is not None:
        field = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            # "required" errors sit on the parent; name the missing field.
            missing = error.message.split("'")[1]
            field = f"{field}.{missing}" if field else missing
        raise InvalidAlert(field, error.message)
    return alert


# Who else may see the object (user and group ids of its local-role holders)
# and where Slack posts it: needed to deliver an alert, not to read it.
DELIVERY_FIELDS = frozenset({"audience", "routes"})


def for_readers(alert: dict) -> dict:
    """``alert`` as people without the *Send alerts* permission read it:
    without ``audience`` and ``routes`` (the sidecar sends browsers the same)."""
    return {key: value for key, value in alert.items() if key not in DELIVERY_FIELDS}


def new_alert_id() -> str:
    """32 hex digits: 12 of milliseconds since the epoch, then 20 random.

    Unique like a UUID, and sortable by creation time, so the outbox drains
    in the order alerts were made.
    """
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_alert(
    *,
    topic: str,
    title: str,
    audience,
    severity: str = "info",
    message: str = "",
    url: str | None = None,
    source: dict | None = None,
    slack_routes: list | None = None,
    websocket: bool = True,
) -> dict:
    """Build a validated v1 alert with a fresh ``id`` and ``created_at``."""
    alert = {
        "id": new_alert_id(),
        "version": ALERT_VERSION,
        "topic": topic,
        "severity": severity,
        "title": title,
        "audience": sorted(set(audience)),
        "routes": {"websocket": websocket, "slack": list(slack_routes or [])},
        "created_at": utc_now_iso(),
    }
    if message:
        alert["message"] = message
    if url:
        alert["url"] = url
    if source:
        alert["source"] = {k: v for k, v in source.items() if v is not None}
    return validate_alert(alert)
