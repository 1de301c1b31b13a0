"""Who may see an alert: the same principals Plone's catalog uses.

An alert's audience is exactly the object's ``allowedRolesAndUsers`` as the
catalog indexes it, and a user's principals are what the catalog filters
searches with. Delivery is then a set intersection, and a user never gets an
alert about an object the catalog would hide from them.
"""

from plone import api
from plone.indexer.interfaces import IIndexer
from zope.component import getMultiAdapter


def object_audience(obj) -> list[str]:
    """The principals allowed to view ``obj`` (its allowedRolesAndUsers)."""
    catalog = api.portal.get_tool("portal_catalog")
    indexer = getMultiAdapter((obj, catalog), IIndexer, name="allowedRolesAndUsers")
    return sorted(set(indexer()))


def user_principals(user) -> list[str]:
    """The principals ``user`` matches in the catalog: ``Anonymous``, their
    roles, ``user:<id>`` and ``user:<group>`` for each group."""
    catalog = api.portal.get_tool("portal_catalog")
    return sorted(set(catalog._listAllowedRolesAndUsers(user)))
