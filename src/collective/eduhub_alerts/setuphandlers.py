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
    """Remove the add-on's "Send real-time alert" actions from content rules
    (the registry records, configlet and browser layer go with the profile)."""
    from plone.contentrules.engine.interfaces import IRuleStorage
    from zope.component import queryUtility

    from .contentrules.action import ELEMENT

    _remove_outbox(context)
    _remove_member_property()
    storage = queryUtility(IRuleStorage)
    for rule in storage.values() if storage is not None else ():
        kept = [action for action in rule.actions if getattr(action, "element", None) != ELEMENT]
        if len(kept) != len(rule.actions):
            rule.actions[:] = kept


def _remove_outbox(context):
    from plone import api
    from zope.annotation.interfaces import IAnnotations

    from .outbox import ANNOTATION_KEY
    from .outbox import Outbox

    import logging

    site = api.portal.get()
    waiting = len(Outbox(site, create=False))
    if waiting:
        logging.getLogger(__name__).warning(
            "uninstalling: %d alert(s) never reached Redis and are discarded", waiting
        )
    IAnnotations(site).pop(ANNOTATION_KEY, None)


def _remove_member_property():
    from plone import api

    from .preferences import MUTED_PROPERTY

    memberdata = api.portal.get_tool("portal_memberdata")
    if memberdata.hasProperty(MUTED_PROPERTY):
        memberdata.manage_delProperties([MUTED_PROPERTY])
