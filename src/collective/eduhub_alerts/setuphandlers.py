"""Install and uninstall handlers."""

from plone.base.interfaces import INonInstallable
from zope.interface import implementer


@implementer(INonInstallable)
class HiddenProfiles:
    def getNonInstallableProfiles(self):
        """Hide the uninstall profile from the add-ons control panel."""
        return ["collective.eduhub_alerts:uninstall"]


def post_install(context):
    """Post install script."""


def uninstall(context):
    """Uninstall script."""
