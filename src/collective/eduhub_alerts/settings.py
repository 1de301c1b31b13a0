"""Reading the site's settings (registry records of IEduhubAlertsSettings)."""

from plone import api

from .interfaces import SETTINGS_PREFIX


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
