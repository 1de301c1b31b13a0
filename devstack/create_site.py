"""Create the Plone site with plone.restapi and the add-on, unless it exists.

Run by ``zconsole run etc/zope.conf create_site.py SITE_ID ADMIN_USER`` with
the admin's password in ``DEVSTACK_ADMIN_PASSWORD``; zconsole provides ``app``.
"""

from AccessControl.SecurityManagement import newSecurityManager
from Products.CMFPlone.factory import addPloneSite

import os
import sys
import transaction


# zconsole leaves its own arguments in sys.argv; ours are the last two.
site_id, admin_user = sys.argv[-2:]
app = globals()["app"]  # noqa: F821 - provided by zconsole

if site_id in app.objectIds():
    print(f"site {site_id!r} exists")
else:
    if app.acl_users.getUser(admin_user) is None:
        # mkwsgiinstance's inituser is read only when Zope serves; create the
        # Zope admin here so the first run needs no extra step.
        password = os.environ["DEVSTACK_ADMIN_PASSWORD"]
        app.acl_users._doAddUser(admin_user, password, ["Manager"], [])
    user = app.acl_users.getUser(admin_user)
    newSecurityManager(None, user.__of__(app.acl_users))
    site = addPloneSite(
        app,
        site_id,
        title="EduHub",
        # The Classic UI distribution's profiles, then the REST API and the add-on.
        extension_ids=(
            "plone.app.contenttypes:default",
            "plone.app.layout:default",
            "plonetheme.barceloneta:default",
            "plone.restapi:default",
            "collective.eduhub_alerts:default",
        ),
        setup_content=False,
        default_language="en",
    )
    transaction.commit()
    print(f"site {site_id!r} created")
