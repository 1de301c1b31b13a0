"""Recent alerts, read back from the Redis stream and filtered for a user.

The stream is the history (capped by EDUHUB_STREAM_MAXLEN). Reading goes
newest first and stops after ``SCAN_LIMIT`` entries, so a request costs a
bounded amount of work however long the stream is.
"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone

import json

from .config import ALERTS_STREAM
from .settings import topic_matches


SCAN_LIMIT = 10_000
_CHUNK = 500


class InvalidFilter(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class AlertFilter:
    topic: str | None = None
    severities: frozenset = frozenset()
    since: datetime | None = None

    @classmethod
    def from_query(cls, form) -> "AlertFilter":
        """Parse ``topic``, ``severity`` (repeatable or comma-separated) and
        ``since`` (ISO 8601) from a request form, naming a bad one."""
        topic = form.get("topic") or None
        if topic is not None and not all(part for part in topic.split(".")):
            raise InvalidFilter("topic", "a dotted topic such as workflow.publish or workflow.*")
        raw = form.get("severity") or []
        severities = frozenset(
            s.strip() for value in ([raw] if isinstance(raw, str) else raw)
            for s in value.split(",") if s.strip()
        )
        unknown = severities - {"info", "success", "warning", "error", "critical"}
        if unknown:
            raise InvalidFilter("severity", f"unknown severity {sorted(unknown)[0]!r}")
        since = None
        if form.get("since"):
            try:
                since = datetime.fromisoformat(form["since"].replace("Z", "+00:00"))
            except ValueError:
                raise InvalidFilter("since", "an ISO 8601 date and time, e.g. 2026-12-03T09:00:00Z") from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=timezone.utc)
        return cls(topic=topic, severities=severities, since=since)

    def matches(self, alert: dict) -> bool:
        if self.topic and not topic_matches(self.topic, alert["topic"]):
            return False
        if self.severities and alert["severity"] not in self.severities:
            return False
        if self.since:
            created = datetime.fromisoformat(alert["created_at"].replace("Z", "+00:00"))
            if created <= self.since:
                return False
        return True


def recent_alerts(client, principals, alert_filter=AlertFilter()) -> list[dict]:
    """The alerts whose audience meets ``principals`` and that match the
    filter, newest first, each with its ``stream_id``."""
    principals = set(principals)
    found, scanned, upper = [], 0, "+"
    while scanned < SCAN_LIMIT:
        entries = client.xrevrange(ALERTS_STREAM, max=upper, min="-", count=_CHUNK)
        if upper != "+":
            entries = entries[1:]  # the bound itself was in the previous chunk
        if not entries:
            break
        for stream_id, fields in entries:
            scanned += 1
            alert = json.loads(fields[b"alert"])
            # No early stop at `since`: alerts held in the outbox during a
            # Redis outage reach the stream after younger ones.
            if not principals.isdisjoint(alert["audience"]) and alert_filter.matches(alert):
                found.append({**alert, "stream_id": stream_id.decode()})
        upper = entries[-1][0]
    return found
