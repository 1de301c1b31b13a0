"""The Classic UI face of the settings: a registry edit form."""

from plone.app.registry.browser.controlpanel import ControlPanelFormWrapper
from plone.app.registry.browser.controlpanel import RegistryEditForm
from plone.z3cform import layout

from collective.eduhub_alerts import _
from collective.eduhub_alerts.interfaces import IEduhubAlertsSettings
from collective.eduhub_alerts.interfaces import SETTINGS_PREFIX


class EduhubAlertsSettingsForm(RegistryEditForm):
    schema = IEduhubAlertsSettings
    schema_prefix = SETTINGS_PREFIX
    label = _("controlpanel_title", default="EduHub Alerts")
    description = _(
        "controlpanel_description",
        default="Which events alert, who hears about them on Slack, and where browsers "
        "connect. Secrets (the token secret, the Slack token) are set in the "
        "environment of the servers, not here.",
    )


EduhubAlertsControlPanel = layout.wrap_form(EduhubAlertsSettingsForm, ControlPanelFormWrapper)
