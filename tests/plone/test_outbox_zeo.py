"""Several Plone instances on one ZODB: two ZEO clients (real ZEO server,
real client storages) save content and drain the same outbox at once, with
Redis up and after an outage. Every alert reaches the stream exactly once.

The "site" is an OFS folder: what the outbox needs of a Plone site is a
persistent, annotatable object at a path, and a whole Plone site per client
would only slow the test down.
"""

from OFS.Application import Application
from OFS.Folder import Folder
from ZODB.POSException import ConflictError
from zope.annotation.interfaces import IAttributeAnnotatable
from zope.interface import alsoProvides

from collective.eduhub_alerts.alert import make_alert
from collective.eduhub_alerts.outbox import Outbox
from collective.eduhub_alerts.publisher import flush
from collective.eduhub_alerts.publisher import queue_alert

from devstack.processes import free_port

import pytest
import threading
import transaction
import ZEO


SITE_PATH = ("", "school")
SAVES_PER_INSTANCE = 25


@pytest.fixture
def zeo_clients(tmp_path):
    # A FileStorage: the server resolves conflicts with old revisions, which
    # it must be able to load.
    address, stop = ZEO.server(path=str(tmp_path / "Data.fs"))
    databases = [ZEO.DB(address) for _ in range(2)]
    manager = transaction.TransactionManager()
    connection = databases[0].open(transaction_manager=manager)
    app = connection.root()["Application"] = Application()
    school = Folder("school")
    alsoProvides(school, IAttributeAnnotatable)
    app._setObject("school", school)
    manager.commit()
    connection.close()
    yield databases
    for db in databases:
        db.close()
    stop()


def save_with_alert(db, n: int):
    """One request of one instance: retried on ConflictError, as ZPublisher does."""
    manager = transaction.TransactionManager()
    for _attempt in range(10):
        connection = db.open(transaction_manager=manager)
        try:
            manager.begin()
            site = connection.root()["Application"].unrestrictedTraverse(SITE_PATH)
            alert = make_alert(topic="content.modified", title=f"save {n}", audience=["Member"])
            queue_alert(alert, site)
            manager.commit()
            return
        except ConflictError:
            pass
        finally:
            manager.abort()
            connection.close()
    raise AssertionError(f"save {n} never committed")


def run_instances(databases, work):
    threads = [
        threading.Thread(target=work, args=(db, index)) for index, db in enumerate(databases)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def titles(stream_alerts):
    return [alert["title"] for _, alert in stream_alerts()]


def waiting(db) -> int:
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        manager.begin()
        site = connection.root()["Application"].unrestrictedTraverse(SITE_PATH)
        return len(Outbox(site, create=False))
    finally:
        manager.abort()
        connection.close()


def saves(db, index):
    for n in range(SAVES_PER_INSTANCE):
        save_with_alert(db, index * 1000 + n)


def test_two_zeo_clients_saving_at_once_push_each_alert_once(zeo_clients, stream_alerts):
    run_instances(zeo_clients, saves)
    pushed = titles(stream_alerts)
    assert len(pushed) == len(set(pushed)) == 2 * SAVES_PER_INSTANCE
    assert waiting(zeo_clients[0]) == 0


def test_two_zeo_clients_draining_a_backlog_push_each_alert_once(
    zeo_clients, stream_alerts, monkeypatch, redis_url
):
    monkeypatch.setenv("EDUHUB_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    run_instances(zeo_clients, saves)
    assert stream_alerts() == []
    assert waiting(zeo_clients[1]) == 2 * SAVES_PER_INSTANCE

    monkeypatch.setenv("EDUHUB_REDIS_URL", redis_url)
    run_instances(zeo_clients, lambda db, index: flush(db, SITE_PATH))
    pushed = titles(stream_alerts)
    assert len(pushed) == len(set(pushed)) == 2 * SAVES_PER_INSTANCE
    assert waiting(zeo_clients[0]) == 0
