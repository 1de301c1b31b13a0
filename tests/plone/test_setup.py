"""Install and uninstall through GenericSetup."""

from plone import api
from plone.browserlayer import utils as browserlayer_utils

from collective.eduhub_alerts.interfaces import IEduhubAlertsLayer

import pytest


PACKAGE = "collective.eduhub_alerts"


@pytest.fixture
def installer(portal):
    from plone.base.utils import get_installer

    return get_installer(portal, portal.REQUEST)


def test_addon_is_installed(installer):
    assert installer.is_product_installed(PACKAGE)


def test_browser_layer_is_registered(portal):
    assert IEduhubAlertsLayer in browserlayer_utils.registered_layers()


def test_alerts_are_enabled_by_default(portal):
    assert api.portal.get_registry_record(f"{PACKAGE}.enabled") is True


@pytest.mark.parametrize(
    "permission, roles",
    [
        ("collective.eduhub_alerts: Receive alerts", {"Authenticated"}),
        ("collective.eduhub_alerts: Send alerts", {"Manager", "Site Administrator"}),
    ],
)
def test_permissions_are_granted_by_default(portal, permission, roles):
    granted = {r["name"] for r in portal.rolesOfPermission(permission) if r["selected"]}
    assert granted == roles


def test_classic_ui_bundle_is_registered_for_logged_in_users(portal):
    prefix = "plone.bundles/eduhub-alerts"
    assert api.portal.get_registry_record(f"{prefix}.enabled") is True
    assert api.portal.get_registry_record(f"{prefix}.expression") == "python: member is not None"


def configlet_ids(portal):
    return [action.getId() for action in portal.portal_controlpanel.listActions()]


def test_control_panel_is_in_site_setup(portal):
    assert "eduhub-alerts" in configlet_ids(portal)


def test_uninstall_leaves_nothing_behind(portal, installer):
    from zope.annotation.interfaces import IAnnotations

    from collective.eduhub_alerts.outbox import Outbox

    Outbox(portal)  # as after the first alert
    installer.uninstall_product(PACKAGE)
    assert not installer.is_product_installed(PACKAGE)
    assert IEduhubAlertsLayer not in browserlayer_utils.registered_layers()
    registry = portal.portal_registry
    assert [key for key in registry.records.keys() if key.startswith(PACKAGE)] == []
    assert [key for key in registry.records.keys() if "eduhub-alerts" in key] == []
    assert "eduhub-alerts" not in configlet_ids(portal)
    assert "collective.eduhub_alerts.outbox" not in IAnnotations(portal)
    assert not portal.portal_memberdata.hasProperty("eduhub_alerts_muted")
