"""Development and test harness: starts the real parts (Redis, Plone, the
sidecar) as local processes. Used by ``make run`` and by the test suites;
not shipped with either package."""
