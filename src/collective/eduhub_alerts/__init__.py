"""Real-time alerts for Plone sites."""

from zope.i18nmessageid import MessageFactory

_ = MessageFactory("collective.eduhub_alerts")
