"""Slack delivery through the consumer group ``slack``, against a real Redis
and a real HTTP server speaking the Slack Web API: posted once, acked after
success, claimed from dead consumers, dead-lettered and re-driven, paced per
channel, threaded per object."""

from eduhub_alerts_sidecar.app import create_redis
from eduhub_alerts_sidecar.monitoring import Metrics
from eduhub_alerts_sidecar.slack_client import SlackClient
from eduhub_alerts_sidecar.slack_delivery import (
    GROUP,
    IN_FLIGHT,
    ChannelPacer,
    SlackDelivery,
    sent_key,
)

from tests.sidecar.fake_slack import Reply, fake_slack  # noqa: F401 (fixture)
from tests.sidecar.helpers import wait_until

from collections import Counter

import asyncio
import json
import pytest
import redis


WAIT = 10.0


def eventually(condition, timeout: float = WAIT):
    """``wait_until`` for conditions that ask Redis: checked every 5 ms."""
    return wait_until(condition, timeout, every=0.005)


class World:
    """One test's settings, Redis, fake Slack and the deliveries it started."""

    def __init__(self, settings, redis_client, fake):
        self.settings = settings
        self.redis_client = redis_client
        self.fake = fake
        self.deliveries: list[tuple[SlackDelivery, asyncio.Task | None]] = []

    def delivery(self, consumer: str = "replica-a", delivery_class=SlackDelivery,
                 **overrides) -> SlackDelivery:
        settings = self.settings.model_copy(update=overrides)
        metrics = Metrics()
        delivery = delivery_class(create_redis(settings),
                                  SlackClient.from_settings(settings, metrics),
                                  metrics, settings, consumer=consumer)
        self.deliveries.append((delivery, None))
        return delivery

    def start(self, consumer: str = "replica-a", **overrides) -> SlackDelivery:
        delivery = self.delivery(consumer, **overrides)
        task = asyncio.create_task(delivery.run())
        self.deliveries[-1] = (delivery, task)
        return delivery

    def publish(self, alert: dict) -> str:
        return self.redis_client.xadd(self.settings.stream_key, {"alert": json.dumps(alert)})

    def pending(self) -> int | None:
        """Entries read but not acknowledged; None before the group exists."""
        try:
            return self.redis_client.xpending(self.settings.stream_key, GROUP)["pending"]
        except redis.ResponseError:
            return None

    def dead(self) -> list:
        return self.redis_client.xrange(self.settings.dead_letter_key)

    async def close(self):
        for delivery, task in self.deliveries:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await delivery.stop_deliveries()
            await delivery.client.aclose()
            await delivery.redis.aclose()


@pytest.fixture
async def world(make_settings, redis_client, fake_slack):  # noqa: F811
    settings = make_settings(
        slack_bot_token="xoxb-test", slack_base_url=fake_slack.base_url,
        reader_block_ms=50, slack_claim_idle_ms=60_000, slack_pace_seconds=0.0,
        slack_max_retries=0, slack_backoff_base_seconds=0.01,
        slack_retry_after_jitter_seconds=0.0, slack_request_timeout_seconds=2.0,
    )
    w = World(settings, redis_client, fake_slack)
    yield w
    await w.close()


def metric(delivery: SlackDelivery, name: str, **labels) -> float:
    return delivery.metrics.registry.get_sample_value(name, labels) or 0.0


def alert_to(make_alert, *routes, uid=None, **changes) -> dict:
    alert = make_alert(routes={"websocket": True, "slack": list(routes)}, **changes)
    if uid is not None:
        alert["source"] = {**alert["source"], "uid": uid}
    return alert


async def test_alert_is_posted_once_and_acked(world, make_alert):
    world.publish(alert_to(make_alert, {"channel": "C1"}, {"user": "U1"}))
    delivery = world.start()
    await eventually(lambda: len(world.fake.posts()) == 2 and world.pending() == 0)
    assert sorted(r.channel for r in world.fake.posts()) == ["C1", "DU1"]
    assert metric(delivery, "eduhub_alerts_sent_total", channel="slack") == 2
    assert metric(delivery, "eduhub_slack_request_duration_seconds_count",
                  method="chat.postMessage") == 2


async def test_alerts_without_slack_routes_and_invalid_entries_are_acked(world, make_alert):
    delivery = world.start()
    await eventually(lambda: world.redis_client.exists(world.settings.stream_key))
    world.publish(make_alert(routes={"websocket": True}))
    world.redis_client.xadd(world.settings.stream_key, {"alert": "not json"})
    world.publish(alert_to(make_alert, {"channel": "C1"}))
    await eventually(lambda: len(world.fake.posts()) == 1 and world.pending() == 0)
    assert metric(delivery, "eduhub_alerts_failed_total", channel="slack", reason="invalid") == 1


async def test_group_starts_a_little_before_now_not_at_the_beginning(world, make_alert):
    old = alert_to(make_alert, {"channel": "C1"}, title="old")
    world.redis_client.xadd(world.settings.stream_key, {"alert": json.dumps(old)}, id="1-0")
    world.publish(alert_to(make_alert, {"channel": "C1"}, title="recent"))
    world.start()
    await eventually(lambda: world.fake.posts() and world.pending() == 0)
    assert [r.params["text"] for r in world.fake.posts()] == ["[SUCCESS] recent: " + (
        "Timetable for spring term was published by Jane Editor.")]
    # A restarted replica keeps the group's position.
    await world.deliveries[0][0].ensure_group()


async def test_permanent_error_dead_letters_at_once_with_the_reason(world, make_alert):
    world.fake.script("chat.postMessage", Reply.error("channel_not_found"))
    alert = alert_to(make_alert, {"channel": "CGONE"})
    stream_id = world.publish(alert)
    delivery = world.start()
    await eventually(lambda: metric(delivery, "eduhub_slack_dead_lettered_total",
                                    reason="channel_not_found") == 1)
    assert world.pending() == 0
    assert len(world.fake.posts()) == 1
    [(_, fields)] = world.dead()
    assert fields["reason"] == "channel_not_found"
    assert fields["stream_id"] == stream_id
    assert json.loads(fields["alert"])["id"] == alert["id"]
    assert json.loads(fields["errors"])[0]["route"] == "channel:CGONE"
    assert metric(delivery, "eduhub_slack_dead_lettered_total", reason="channel_not_found") == 1
    assert metric(delivery, "eduhub_alerts_failed_total", channel="slack",
                  reason="channel_not_found") == 1


async def test_transient_failures_are_retried_then_dead_lettered(world, make_alert):
    world.fake.script("chat.postMessage", *[Reply.server_error(500)] * 10)
    world.publish(alert_to(make_alert, {"channel": "C1"}))
    delivery = world.start(slack_claim_idle_ms=20, slack_max_attempts=3)
    await eventually(lambda: metric(delivery, "eduhub_slack_dead_lettered_total",
                                    reason="max_attempts") == 1)
    assert len(world.fake.posts()) == 3
    [(_, fields)] = world.dead()
    assert fields["reason"] == "max_attempts"
    assert fields["attempts"] == "3"
    assert json.loads(fields["errors"])[0]["reason"] == "http_500"
    assert metric(delivery, "eduhub_slack_dead_lettered_total", reason="max_attempts") == 1


async def test_transient_failure_then_success_on_the_next_attempt(world, make_alert):
    world.fake.script("chat.postMessage", Reply.server_error(502))
    world.publish(alert_to(make_alert, {"channel": "C1"}, {"channel": "C2"}))
    world.start(slack_claim_idle_ms=20)
    await eventually(lambda: world.pending() == 0 and len(world.fake.posts()) == 3)
    # Only the route that failed is posted again, not the one that succeeded.
    per_channel = Counter(r.channel for r in world.fake.posts())
    assert set(per_channel) == {"C1", "C2"} and sorted(per_channel.values()) == [1, 2]
    assert not world.dead()


class CrashBeforeAck(SlackDelivery):
    """Posts, then dies before acknowledging (as a killed sidecar would)."""

    async def settle(self, *args, **kwargs):
        raise asyncio.CancelledError


async def test_crash_between_post_and_ack_does_not_post_twice(world, make_alert):
    world.publish(alert_to(make_alert, {"channel": "C1"}))
    crashing = world.delivery("replica-a", CrashBeforeAck)
    task = asyncio.create_task(crashing.run())
    await eventually(lambda: len(world.fake.posts()) == 1)
    await eventually(lambda: not crashing._in_flight)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert world.pending() == 1
    # The same replica starts again; the entry is redelivered to it by XAUTOCLAIM.
    world.start("replica-a", slack_claim_idle_ms=20)
    await eventually(lambda: world.pending() == 0)
    assert len(world.fake.posts()) == 1


async def test_pending_entries_of_a_dead_consumer_are_delivered_by_another(world, make_alert):
    setup = world.delivery()
    await setup.ensure_group()
    world.publish(alert_to(make_alert, {"channel": "C1"}))
    # The dead replica read it, then died before posting anything.
    world.redis_client.xreadgroup(GROUP, "replica-dead", {world.settings.stream_key: ">"})
    assert world.pending() == 1
    alive = world.start("replica-b", slack_claim_idle_ms=20)
    await eventually(lambda: world.pending() == 0)
    assert len(world.fake.posts()) == 1
    assert metric(alive, "eduhub_alerts_sent_total", channel="slack") == 1


async def test_a_route_being_posted_elsewhere_is_not_posted_again(world, make_alert):
    alert = alert_to(make_alert, {"channel": "C1"})
    delivery = world.delivery()
    world.redis_client.set(sent_key(world.settings.stream_key, alert["id"], "channel:C1"),
                           IN_FLIGHT)
    outcome = await delivery.deliver_route(alert, {"channel": "C1"})
    assert (outcome.status, outcome.reason) == ("failed", "in_flight")
    assert world.fake.posts() == []


async def test_invalid_route_is_a_permanent_failure(world, make_alert):
    delivery = world.delivery()
    outcome = await delivery.deliver_route(make_alert(), {"team": "T1"})
    assert (outcome.status, outcome.reason) == ("permanent", "invalid_route")


async def test_dead_letter_and_redrive(world, make_alert):
    world.fake.script("chat.postMessage", Reply.error("not_in_channel"))
    alert = alert_to(make_alert, {"channel": "C1"}, {"channel": "C2"})
    world.publish(alert)
    delivery = world.start()
    await eventually(lambda: world.dead() and world.pending() == 0)
    [letter] = await delivery.dead_letters()
    assert letter["reason"] == "not_in_channel" and letter["alert"]["id"] == alert["id"]
    failed_channel = letter["errors"][0]["route"].split(":")[1]
    # The bot was invited: re-drive posts only the route that failed.
    outcomes = await delivery.redrive(letter["id"])
    assert sorted(o.status for o in outcomes) == ["sent", "skipped"]
    assert [r.channel for r in world.fake.posts()].count(failed_channel) == 2
    assert len(world.fake.posts()) == 3
    assert world.dead() == []
    assert await delivery.redrive(letter["id"]) is None
    assert await delivery.redrive("not-an-id") is None


async def test_a_failed_redrive_keeps_the_dead_letter(world, make_alert):
    world.fake.script("chat.postMessage", Reply.error("is_archived"), Reply.error("is_archived"))
    world.publish(alert_to(make_alert, {"channel": "C1"}))
    delivery = world.start()
    await eventually(lambda: world.dead() and world.pending() == 0)
    [letter] = await delivery.dead_letters()
    [outcome] = await delivery.redrive(letter["id"])
    assert outcome.status == "permanent"
    assert len(world.dead()) == 1


async def test_pacing_per_channel_without_blocking_other_channels(world, make_alert):
    pace = 0.25
    for n in range(3):
        world.publish(alert_to(make_alert, {"channel": "C1"}, title=f"one-{n}"))
    for n in range(3):
        world.publish(alert_to(make_alert, {"channel": "C2"}, title=f"two-{n}"))
    world.start(slack_pace_seconds=pace)
    await eventually(lambda: len(world.fake.posts()) == 6 and world.pending() == 0)
    one, two = world.fake.posts("C1"), world.fake.posts("C2")
    # In stream order within a channel...
    assert [r.params["text"].split(":")[0] for r in one] == [
        "[SUCCESS] one-0", "[SUCCESS] one-1", "[SUCCESS] one-2"]
    # ...spaced by the pace...
    for earlier, later in zip(one, one[1:]):
        assert later.at - earlier.at >= pace - 0.01
    for earlier, later in zip(two, two[1:]):
        assert later.at - earlier.at >= pace - 0.01
    # ...and C2 did not wait for C1's queue: the channels interleave.
    assert two[0].at < one[1].at
    assert two[1].at < one[2].at


async def test_pacer_waits_only_for_its_own_channel():
    now = [100.0]
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    pacer = ChannelPacer(1.0, clock=lambda: now[0], sleep=sleep)
    async with pacer.hold("C1") as pace:
        await pace.wait()
        pace.mark()
    async with pacer.hold("C2") as pace:
        await pace.wait()
        pace.mark()
    now[0] += 0.25
    async with pacer.hold("C1") as pace:
        await pace.wait()
    assert slept == [0.75]


async def test_alerts_about_one_object_share_a_thread_whose_parent_shows_the_latest(
        world, make_alert):
    for state in ("private", "pending", "published"):
        world.publish(alert_to(make_alert, {"channel": "C1"}, uid="UID-1",
                               title=f"now {state}"))
    world.publish(alert_to(make_alert, {"channel": "C1"}, uid="UID-2", title="other object"))
    world.start()
    await eventually(lambda: len(world.fake.posts()) == 4 and world.pending() == 0
                     and len(world.fake.calls("chat.update")) == 2)
    parent, *replies, other = world.fake.posts()
    assert "thread_ts" not in parent.params and "thread_ts" not in other.params
    parent_ts = f"1700000000.{1:06d}"
    assert [r.params["thread_ts"] for r in replies] == [parent_ts, parent_ts]
    updates = world.fake.calls("chat.update")
    assert [u.params["ts"] for u in updates] == [parent_ts, parent_ts]
    assert updates[-1].params["text"].startswith("[SUCCESS] now published")
    assert "Latest state" in json.dumps(updates[-1].params["blocks"])


async def test_a_failed_parent_update_does_not_fail_the_delivery(world, make_alert):
    world.fake.script("chat.update", Reply.error("message_not_found"))
    for n in range(2):
        world.publish(alert_to(make_alert, {"channel": "C1"}, uid="UID-1", title=f"n{n}"))
    world.start()
    await eventually(lambda: len(world.fake.posts()) == 2 and world.pending() == 0
                     and world.fake.calls("chat.update"))
    assert not world.dead()


async def test_threads_can_be_turned_off(world, make_alert):
    for n in range(2):
        world.publish(alert_to(make_alert, {"channel": "C1"}, uid="UID-1", title=f"n{n}"))
    world.start(slack_threads=False)
    await eventually(lambda: len(world.fake.posts()) == 2 and world.pending() == 0)
    assert all("thread_ts" not in r.params for r in world.fake.posts())
    assert world.fake.calls("chat.update") == []


async def test_an_entry_still_being_posted_is_not_claimed_from_itself(world, make_alert):
    world.fake.script("chat.postMessage", Reply(delay=0.3))
    world.publish(alert_to(make_alert, {"channel": "C1"}))
    delivery = world.start(slack_claim_idle_ms=10)
    await eventually(lambda: world.pending() == 0 and world.fake.posts())
    assert len(world.fake.posts()) == 1
    assert metric(delivery, "eduhub_alerts_sent_total", channel="slack") == 1


async def test_stopping_mid_post_leaves_the_entry_pending(world, make_alert):
    world.fake.script("chat.postMessage", Reply(delay=1.0))
    world.publish(alert_to(make_alert, {"channel": "C1"}))
    world.start()
    await eventually(lambda: world.fake.posts())
    delivery, task = world.deliveries[-1]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not delivery._in_flight
    assert world.pending() == 1


async def test_claims_page_through_many_pending_entries_and_skip_trimmed_ones(world, make_alert):
    setup = world.delivery()
    await setup.ensure_group()
    ids = [world.publish(alert_to(make_alert, {"channel": "C1"})) for _ in range(3)]
    world.redis_client.xreadgroup(GROUP, "replica-dead", {world.settings.stream_key: ">"})
    world.redis_client.xdel(world.settings.stream_key, ids[0])  # trimmed before delivery
    world.start("replica-b", slack_claim_idle_ms=10, reader_batch_size=1)
    await eventually(lambda: world.pending() == 0 and len(world.fake.posts()) == 2)


async def test_a_stream_key_of_the_wrong_type_is_an_error(world):
    world.redis_client.set(world.settings.stream_key, "not a stream")
    with pytest.raises(redis.ResponseError):
        await world.delivery().ensure_group()


async def test_an_unexpected_error_releases_the_route_and_keeps_the_entry_pending(
        world, make_alert, monkeypatch, caplog):
    alert = alert_to(make_alert, {"channel": "C1"})
    delivery = world.start()

    async def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(delivery.client, "post_message", broken)
    world.publish(alert)
    await eventually(lambda: "crashed; it stays pending" in caplog.text)
    assert world.pending() == 1
    assert not world.redis_client.exists(
        sent_key(world.settings.stream_key, alert["id"], "channel:C1"))
