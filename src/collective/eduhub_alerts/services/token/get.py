"""GET @alerts-token: a short-lived token for the sidecar's WebSocket."""

from plone import api
from plone.restapi.services import Service

from collective.eduhub_alerts.config import ConfigurationError
from collective.eduhub_alerts.tokens import issue_token

import logging


logger = logging.getLogger(__name__)


class AlertsTokenGet(Service):
    """Anonymous users never get here: the service needs *Receive alerts*,
    which only authenticated users hold by default."""

    def reply(self):
        try:
            return issue_token(api.user.get_current(), self.context)
        except ConfigurationError as exc:
            logger.error("cannot issue alert tokens: %s", exc)
            self.request.response.setStatus(503)
            return {"error": {"type": "ServiceUnavailable", "message": str(exc)}}
