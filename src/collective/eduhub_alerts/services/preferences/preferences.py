"""@alerts-preferences: the current user's choice of live alerts on or off."""

from plone import api
from plone.restapi.services import Service
from zExceptions import BadRequest

from collective.eduhub_alerts.preferences import is_muted
from collective.eduhub_alerts.preferences import set_muted
from collective.eduhub_alerts.services import json_object_body


def _answer(member) -> dict:
    return {"muted": is_muted(member)}


class PreferencesGet(Service):
    def reply(self):
        return _answer(api.user.get_current())


class PreferencesPatch(Service):
    def reply(self):
        body = json_object_body(self.request)
        if body is None or set(body) - {"muted"}:
            raise BadRequest("muted: the only preference is {\"muted\": true|false}")
        if "muted" in body:
            if not isinstance(body["muted"], bool):
                raise BadRequest("muted: true or false")
            set_muted(api.user.get_current(), body["muted"])
        return _answer(api.user.get_current())
