"""The Volto face of the settings: plone.restapi's @controlpanels/eduhub-alerts."""

from plone.restapi.controlpanels import RegistryConfigletPanel
from zope.component import adapter
from zope.interface import Interface

from collective.eduhub_alerts.interfaces import IEduhubAlertsLayer
from collective.eduhub_alerts.interfaces import IEduhubAlertsSettings
from collective.eduhub_alerts.interfaces import SETTINGS_PREFIX


@adapter(Interface, IEduhubAlertsLayer)
class EduhubAlertsControlPanel(RegistryConfigletPanel):
    schema = IEduhubAlertsSettings
    schema_prefix = SETTINGS_PREFIX
    configlet_id = "eduhub-alerts"
    configlet_category_id = "Products"
