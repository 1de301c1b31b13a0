# Plone 6.2 backend with collective.eduhub_alerts, on the official image.
# The image creates the site on first start from SITE/PROFILES (see compose).
FROM plone/plone-backend:6.2.2
COPY setup.py README.md CHANGES.md MANIFEST.in /app/src/collective.eduhub_alerts/
COPY schema /app/src/collective.eduhub_alerts/schema
COPY src /app/src/collective.eduhub_alerts/src
RUN /app/bin/pip install --no-cache-dir /app/src/collective.eduhub_alerts
