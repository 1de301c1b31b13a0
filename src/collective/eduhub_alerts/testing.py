"""Test layers: a Plone site with plone.restapi and the add-on installed,
``simple_publication_workflow`` as the default workflow, and the users the
tests act as."""

from plone.app.contenttypes.testing import PLONE_APP_CONTENTTYPES_FIXTURE
from plone.app.testing import FunctionalTesting
from plone.app.testing import IntegrationTesting
from plone.app.testing import PloneSandboxLayer
from plone.app.testing import applyProfile
from plone.testing.zope import WSGI_SERVER_FIXTURE


class EduhubAlertsLayer(PloneSandboxLayer):
    defaultBases = (PLONE_APP_CONTENTTYPES_FIXTURE,)

    def setUpZope(self, app, configurationContext):
        import plone.restapi

        import collective.eduhub_alerts

        self.loadZCML(package=plone.restapi)
        self.loadZCML(package=collective.eduhub_alerts)

    def setUpPloneSite(self, portal):
        applyProfile(portal, "collective.eduhub_alerts:default")
        # The Plone fixture empties the default chain; real sites publish.
        portal.portal_workflow.setDefaultChain("simple_publication_workflow")
        acl_users = portal.acl_users
        for user_id, roles in (("editor", ["Editor"]), ("student", ["Member"])):
            acl_users.userFolderAddUser(user_id, "secret-" + user_id, roles, [])


FIXTURE = EduhubAlertsLayer()

INTEGRATION_TESTING = IntegrationTesting(
    bases=(FIXTURE,), name="EduhubAlertsLayer:IntegrationTesting"
)

FUNCTIONAL_TESTING = FunctionalTesting(
    bases=(FIXTURE, WSGI_SERVER_FIXTURE), name="EduhubAlertsLayer:FunctionalTesting"
)
