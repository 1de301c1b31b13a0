"""Benchmark (make bench-plone): what the add-on adds to a content save.

Not part of `make test` (the file name does not match test_*.py); it prints
figures and asserts nothing about time. Each sample is one committed
transaction that edits a page and fires the modified event, as a save in
Classic UI or PATCH in Volto does; with alerts on, that transaction also
builds the alert, writes it to the outbox, and after the commit pushes it to
Redis and removes it from the outbox.
"""

from plone import api
from zope.event import notify
from zope.lifecycleevent import ObjectModifiedEvent

import statistics
import time
import transaction


SAVES = 300
ROUNDS = 10


def timed_saves(doc, count: int) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        transaction.begin()  # as ZPublisher does for every request
        with api.env.adopt_roles(["Manager"]):
            doc.title = f"Timetable, revision {i}"
            notify(ObjectModifiedEvent(doc))
        transaction.commit()
        samples.append(time.perf_counter() - start)
    return samples


def describe(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return (
        f"median {statistics.median(ms):6.2f} ms   p95 {ms[int(len(ms) * 0.95)]:6.2f} ms   "
        f"mean {statistics.fmean(ms):6.2f} ms"
    )


def test_overhead_of_alerts_on_a_content_save(site, committed, set_record, stream_alerts):
    doc = committed(lambda: api.content.create(container=site, type="Document", id="bench"))
    set_record("alert_events", {"content.modified"})
    timed_saves(doc, 20)  # warm caches
    # Interleaved rounds, so that drift (the growing history of the page,
    # caches) weighs on both sides alike.
    off, on = [], []
    for _round in range(ROUNDS):
        set_record("enabled", False)
        off += timed_saves(doc, SAVES // ROUNDS)
        set_record("enabled", True)
        before = len(stream_alerts())
        on += timed_saves(doc, SAVES // ROUNDS)
        assert len(stream_alerts()) - before == SAVES // ROUNDS  # every save alerted once
    print(f"\n{SAVES} saves of a page, each one committed transaction")
    print(f"  alerts off: {describe(off)}")
    print(f"  alerts on:  {describe(on)}")
    print(
        "  overhead:   median "
        f"{(statistics.median(on) - statistics.median(off)) * 1000:+.2f} ms per save"
    )
