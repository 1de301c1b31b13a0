"""Fixtures for the add-on's tests: pytest-plone fixtures for our layers,
and the shared Redis server in the environment before any test runs."""

from pytest_plone import fixtures_factory

from collective.eduhub_alerts.config import ALERTS_STREAM
from collective.eduhub_alerts.testing import FUNCTIONAL_TESTING
from collective.eduhub_alerts.testing import INTEGRATION_TESTING

from plone import api

import json
import pytest
import transaction


globals().update(
    fixtures_factory(
        (
            (INTEGRATION_TESTING, "integration"),
            (FUNCTIONAL_TESTING, "functional"),
        )
    )
)


@pytest.fixture(autouse=True)
def _redis_for_plone(redis_client):
    """Every add-on test runs against the real Redis, with an empty stream."""
    yield redis_client


@pytest.fixture
def stream_alerts(redis_client):
    """Read back what was pushed to the stream, as (stream id, alert) pairs."""

    def read():
        return [
            (entry_id, json.loads(fields["alert"]))
            for entry_id, fields in redis_client.xrange(ALERTS_STREAM)
        ]

    return read


@pytest.fixture
def site(functional_portal):
    """The functional layer's site: commits are real."""
    return functional_portal


@pytest.fixture
def committed():
    """Run ``change()`` as a Manager and commit; return its result."""

    def run(change):
        with api.env.adopt_roles(["Manager"]):
            result = change()
        transaction.commit()
        return result

    return run


@pytest.fixture
def set_record():
    def set_(name, value):
        api.portal.set_registry_record(f"collective.eduhub_alerts.{name}", value)
        transaction.commit()

    return set_
