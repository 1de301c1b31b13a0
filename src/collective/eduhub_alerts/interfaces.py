"""Interfaces of the add-on: the browser layer and the settings schema."""

from zope import schema
from zope.interface import Interface
from zope.publisher.interfaces.browser import IDefaultBrowserLayer

from . import _


SETTINGS_PREFIX = "collective.eduhub_alerts"
"""Registry prefix of :class:`IEduhubAlertsSettings` records."""


class IEduhubAlertsLayer(IDefaultBrowserLayer):
    """Browser layer: every view and service of the add-on is bound to it,
    so nothing exists on a site until the add-on is installed."""


class IEduhubAlertsSettings(Interface):
    """Site settings, stored in the registry (secrets never are: they come
    from the environment)."""

    enabled = schema.Bool(
        title=_("label_enabled", default="Send alerts"),
        description=_(
            "help_enabled",
            default="When off, no event of this site produces an alert.",
        ),
        default=True,
        required=False,
    )
