"""Reading the site's settings (registry records of IEduhubAlertsSettings)."""

from plone import api

from .config import get_settings
from .interfaces import SETTINGS_PREFIX
from .interfaces import parse_severity_rule
from .interfaces import parse_slack_route
from .interfaces import parse_template_rule


def _record(name: str, default):
    value = api.portal.get_registry_record(f"{SETTINGS_PREFIX}.{name}", default=default)
    return default if value is None else value


def alerts_enabled() -> bool:
    """Alerts are on for the current site. The records exist only where the
    add-on is installed, so other sites of the same instance stay silent."""
    return bool(_record("enabled", False))


def event_alerts(kind: str, portal_type: str) -> bool:
    """Whether an event of ``kind`` (``content.added``, ``workflow``...) on
    content of ``portal_type`` alerts on the current site."""
    if not alerts_enabled() or kind not in _record("alert_events", set()):
        return False
    types = _record("portal_types", [])
    return not types or portal_type in types


def transition_alerts(transition: str) -> bool:
    allowed = _record("transitions", [])
    return not allowed or transition in allowed


def topic_matches(pattern: str, topic: str) -> bool:
    """``*`` stands for exactly one dotted segment (as in the sidecar)."""
    wanted, actual = pattern.split("."), topic.split(".")
    return len(wanted) == len(actual) and all(w in ("*", a) for w, a in zip(wanted, actual))


def slack_routes_for(topic: str) -> list[dict]:
    """The Slack routes of every rule whose pattern matches ``topic``."""
    routes = []
    for line in _record("slack_routes", []):
        pattern, targets = parse_slack_route(line)
        if topic_matches(pattern, topic):
            routes.extend(t for t in targets if t not in routes)
    return routes


def severity_for(topic: str, default: str) -> str:
    for line in _record("severities", []):
        pattern, severity = parse_severity_rule(line)
        if topic_matches(pattern, topic):
            return severity
    return default


def template_for(topic: str) -> tuple[str, str] | None:
    """(title template, message template) of the first matching rule."""
    for line in _record("templates", []):
        pattern, title, message = parse_template_rule(line)
        if topic_matches(pattern, topic):
            return title, message
    return None


def websocket_url() -> str:
    """The control panel's URL, else the deployment's (environment)."""
    return _record("websocket_url", "") or get_settings().websocket_url


def browser_topics() -> list[str]:
    """What pages subscribe to; every topic of one to three segments by default."""
    return list(_record("browser_topics", [])) or ["*", "*.*", "*.*.*"]


def post_rate_per_minute() -> int:
    return _record("post_rate_per_minute", 20)
