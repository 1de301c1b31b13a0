"""plone.restapi services of the add-on; the domain code lives one level up."""

from plone.protect.interfaces import IDisableCSRFProtection
from plone.restapi.deserializer import json_body
from plone.restapi.exceptions import DeserializationError
from zope.interface import alsoProvides


def json_object_body(request) -> dict | None:
    """The body of a JSON write request as a dict, or None when it is not a
    JSON object (the service answers 400 naming what it expects).

    Like plone.restapi's own write services, it turns plone.protect's
    automatic CSRF check off for this request: a JSON body cannot be sent by a
    cross-site form, and without this the check aborts the outbox write after
    the service has answered.
    """
    alsoProvides(request, IDisableCSRFProtection)
    try:
        body = json_body(request)
    except DeserializationError:
        return None
    return body if isinstance(body, dict) else None
