"""@alerts-preferences: the current user's choice of live alerts on or off."""

from plone import api
from plone.protect.interfaces import IDisableCSRFProtection
from plone.restapi.deserializer import json_body
from plone.restapi.exceptions import DeserializationError
from plone.restapi.services import Service
from zExceptions import BadRequest
from zope.interface import alsoProvides

from collective.eduhub_alerts.preferences import is_muted
from collective.eduhub_alerts.preferences import set_muted


def _answer(member) -> dict:
    return {"muted": is_muted(member)}


class PreferencesGet(Service):
    def reply(self):
        return _answer(api.user.get_current())


class PreferencesPatch(Service):
    def reply(self):
        # A JSON PATCH cannot be forged by a cross-site form, and the write is
        # the user's own property; plone.restapi's write services do the same.
        alsoProvides(self.request, IDisableCSRFProtection)
        try:
            body = json_body(self.request)
        except DeserializationError:
            body = None  # not a JSON object: answered below
        if not isinstance(body, dict) or set(body) - {"muted"}:
            raise BadRequest("muted: the only preference is {\"muted\": true|false}")
        if "muted" in body:
            if not isinstance(body["muted"], bool):
                raise BadRequest("muted: true or false")
            set_muted(api.user.get_current(), body["muted"])
        return _answer(api.user.get_current())
