"""Slack incoming-webhook routes (``{"webhook": "<name>"}``) against the fake
Slack server's ``POST /hooks/<id>`` and a real Redis: the URL comes from
``EDUHUB_SLACK_WEBHOOK_<NAME>`` (or its ``_FILE``), the message is the same
Block Kit message, 429 / 5xx are retried, refusals and unknown names are
permanent, and the URL never shows up in logs, errors or dead letters."""

from eduhub_alerts_sidecar.models import InvalidAlert, validate_alert
from eduhub_alerts_sidecar.settings import Settings
from eduhub_alerts_sidecar.slack_client import (
    SlackAPIError,
    SlackClient,
    SlackPermanentError,
    route_key,
)
from eduhub_alerts_sidecar.slack_delivery import SlackDelivery, sent_key

from pydantic import SecretStr, ValidationError

from tests.sidecar.fake_slack import Reply, fake_slack, make_slack_client, retries  # noqa: F401 (fixtures)
from tests.sidecar.test_slack_delivery import World, alert_to, eventually, metric

import json
import logging
import pytest


HOOK = "T000/B000/webhook-secret-0123456789"


@pytest.fixture
def make_client(make_slack_client, fake_slack):  # noqa: F811
    def make(webhooks=None, **overrides) -> SlackClient:
        urls = {"staffroom": fake_slack.webhook_url(HOOK)} if webhooks is None else webhooks
        return make_slack_client(None, webhook_url=urls.get, **overrides)

    return make


# --- the route form -------------------------------------------------------------


def test_the_schema_accepts_a_named_webhook_route_and_nothing_looser(make_alert):
    validate_alert(make_alert(routes={"slack": [{"webhook": "staff-room_2"}]}))
    for bad in ({"webhook": "Staffroom"}, {"webhook": ""}, {"webhook": "x" * 41},
                {"webhook": "https://hooks.slack.com/services/T/B/x"},
                {"webhook": "staffroom", "channel": "C1"}):
        with pytest.raises(InvalidAlert):
            validate_alert(make_alert(routes={"slack": [bad]}))


def test_a_webhook_route_is_keyed_by_its_name():
    assert route_key({"webhook": "staffroom"}) == "webhook:staffroom"


# --- settings -------------------------------------------------------------------


def test_webhook_urls_come_from_one_variable_per_name(monkeypatch, tmp_path):
    monkeypatch.setenv("EDUHUB_ALERTS_SECRET", "s" * 32)
    monkeypatch.setenv("EDUHUB_SLACK_WEBHOOK_STAFFROOM", "https://hooks.example/one")
    url_file = tmp_path / "hook"
    url_file.write_text("https://hooks.example/two\n")
    monkeypatch.setenv("EDUHUB_SLACK_WEBHOOK_STAFF_ROOM_FILE", str(url_file))
    monkeypatch.setenv("EDUHUB_SLACK_WEBHOOK_BOTH", "https://hooks.example/direct")
    monkeypatch.setenv("EDUHUB_SLACK_WEBHOOK_BOTH_FILE", str(url_file))
    settings = Settings()
    assert settings.slack_webhook_url("staffroom") == "https://hooks.example/one"
    assert settings.slack_webhook_url("staff-room") == "https://hooks.example/two"
    assert settings.slack_webhook_url("staff_room") == "https://hooks.example/two"
    assert settings.slack_webhook_url("both") == "https://hooks.example/direct"
    assert settings.slack_webhook_url("elsewhere") is None
    assert settings.slack_enabled and settings.slack_bot_token is None
    assert "hooks.example" not in repr(settings) and "hooks.example" not in str(settings)


def test_a_bad_webhook_url_is_an_error_naming_the_variable_not_the_url(monkeypatch):
    monkeypatch.setenv("EDUHUB_ALERTS_SECRET", "s" * 32)
    monkeypatch.setenv("EDUHUB_SLACK_WEBHOOK_STAFFROOM", "not-a-url-but-secret")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "EDUHUB_SLACK_WEBHOOK_STAFFROOM" in str(caught.value)
    assert "not-a-url-but-secret" not in str(caught.value)


def test_without_token_or_webhooks_slack_is_off(make_settings):
    assert not make_settings().slack_enabled


# --- the client -----------------------------------------------------------------


async def test_webhook_route_posts_the_block_kit_message_once(make_client, fake_slack,  # noqa: F811
                                                              sample_alert):
    client = make_client()
    posted = await client.send_alert({"webhook": "staffroom"}, sample_alert)
    assert (posted.channel, posted.ts) == ("webhook:staffroom", "")
    [request] = fake_slack.webhook_posts(HOOK)
    assert request.params["blocks"][0]["type"] == "header"
    assert request.params["text"].startswith("[SUCCESS]")
    assert "Authorization" not in request.headers
    assert fake_slack.posts() == []
    assert client.metrics.registry.get_sample_value(
        "eduhub_slack_request_duration_seconds_count", {"method": "webhook"}) == 1


async def test_webhook_429_then_200_honours_retry_after(make_client, fake_slack,  # noqa: F811
                                                        sample_alert):
    fake_slack.script(f"hooks/{HOOK}", Reply(status=429, body="rate_limited",
                                             headers={"Retry-After": "0.3"}))
    client = make_client()
    await client.send_alert({"webhook": "staffroom"}, sample_alert)
    first, second = fake_slack.webhook_posts(HOOK)
    assert 0.3 <= second.at - first.at < 0.3 + 0.5
    assert retries(client) == 1


async def test_webhook_rate_limited_beyond_the_retries_raises(make_client, fake_slack,  # noqa: F811
                                                              sample_alert):
    fake_slack.script(f"hooks/{HOOK}", *[Reply.rate_limited(0.01)] * 4)
    client = make_client()
    with pytest.raises(SlackAPIError) as caught:
        await client.send_alert({"webhook": "staffroom"}, sample_alert)
    assert caught.value.reason == "ratelimited"
    assert not isinstance(caught.value, SlackPermanentError)
    assert len(fake_slack.webhook_posts(HOOK)) == 4 and retries(client) == 3


async def test_webhook_server_errors_are_retried(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script(f"hooks/{HOOK}", Reply.server_error(500), Reply(drop=True))
    client = make_client()
    await client.send_alert({"webhook": "staffroom"}, sample_alert)
    assert len(fake_slack.webhook_posts(HOOK)) == 3 and retries(client) == 2


@pytest.mark.parametrize("status, error", [(404, "no_service"), (403, "invalid_token"),
                                           (410, "channel_is_archived"),
                                           (400, "invalid_payload"), (404, "")])
async def test_webhook_refusals_are_permanent_and_not_retried(make_client, fake_slack,  # noqa: F811
                                                              sample_alert, status, error):
    fake_slack.script(f"hooks/{HOOK}", Reply.webhook_error(status, error))
    client = make_client()
    with pytest.raises(SlackPermanentError) as caught:
        await client.send_alert({"webhook": "staffroom"}, sample_alert)
    assert caught.value.reason == (error or f"http_{status}")
    assert "staffroom" in str(caught.value)
    assert len(fake_slack.webhook_posts(HOOK)) == 1 and retries(client) == 0


async def test_an_unknown_webhook_name_is_permanent(make_client, fake_slack, sample_alert):  # noqa: F811
    client = make_client()
    with pytest.raises(SlackPermanentError) as caught:
        await client.send_alert({"webhook": "elsewhere"}, sample_alert)
    assert caught.value.reason == "webhook_not_configured"
    assert "elsewhere" in str(caught.value)
    assert fake_slack.requests == []


async def test_channel_routes_without_a_bot_token_are_permanent(make_client, sample_alert):
    with pytest.raises(SlackPermanentError) as caught:
        await make_client().send_alert({"channel": "C1"}, sample_alert)
    assert caught.value.reason == "bot_token_not_configured"


async def test_the_webhook_url_is_never_logged_nor_in_errors(make_client, fake_slack,  # noqa: F811
                                                             sample_alert, caplog):
    caplog.set_level(logging.DEBUG)
    fake_slack.script(f"hooks/{HOOK}", Reply.rate_limited(0.01), Reply.server_error(502),
                      Reply.webhook_error(404, "no_service"))
    client = make_client()
    with pytest.raises(SlackPermanentError) as caught:
        await client.send_alert({"webhook": "staffroom"}, sample_alert)
    client_down = make_client(webhooks={"staffroom": "http://127.0.0.1:9/hooks/" + HOOK},
                              max_retries=1)
    with pytest.raises(SlackAPIError) as unreachable:
        await client_down.send_alert({"webhook": "staffroom"}, sample_alert)
    assert unreachable.value.reason == "connection"
    for text in (caplog.text, str(caught.value), repr(caught.value), str(unreachable.value),
                 repr(client)):
        assert "webhook-secret" not in text and "/hooks/" not in text


# --- delivery -------------------------------------------------------------------


@pytest.fixture
async def world(make_settings, redis_client, fake_slack, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    settings = make_settings(
        slack_webhooks={"staffroom": fake_slack.webhook_url(HOOK)},
        slack_base_url=fake_slack.base_url,
        reader_block_ms=50, slack_claim_idle_ms=60_000, slack_pace_seconds=0.0,
        slack_max_retries=0, slack_backoff_base_seconds=0.01,
        slack_retry_after_jitter_seconds=0.0, slack_request_timeout_seconds=2.0,
    )
    w = World(settings, redis_client, fake_slack)
    yield w
    await w.close()
    assert "webhook-secret" not in caplog.text


async def test_webhook_alert_is_posted_once_acked_and_recorded(world, make_alert):
    alert = alert_to(make_alert, {"webhook": "staffroom"}, uid="uid-1")
    world.publish(alert)
    delivery = world.start()
    await eventually(lambda: len(world.fake.webhook_posts(HOOK)) == 1 and world.pending() == 0)
    assert metric(delivery, "eduhub_alerts_sent_total", channel="slack") == 1
    record = sent_key(world.settings.stream_key, alert["id"], "webhook:staffroom")
    assert json.loads(world.redis_client.get(record)) == {"channel": "webhook:staffroom",
                                                          "ts": ""}
    # A redelivery (retry, claim) is skipped; no thread, no chat.update.
    outcome = await delivery.deliver_route(alert, {"webhook": "staffroom"})
    assert outcome.status == "skipped"
    assert len(world.fake.webhook_posts(HOOK)) == 1
    assert world.fake.calls("chat.update") == [] and world.fake.posts() == []


async def test_webhook_429_then_200_is_delivered(world, make_alert):
    world.fake.script(f"hooks/{HOOK}", Reply.rate_limited(0.01))
    world.publish(alert_to(make_alert, {"webhook": "staffroom"}))
    world.start(slack_max_retries=3)
    await eventually(lambda: len(world.fake.webhook_posts(HOOK)) == 2 and world.pending() == 0)
    assert world.dead() == []


@pytest.mark.parametrize("route, reply, reason", [
    ({"webhook": "staffroom"}, Reply.webhook_error(404, "no_service"), "no_service"),
    ({"webhook": "gone"}, None, "webhook_not_configured"),
])
async def test_webhook_permanent_failures_are_dead_lettered(world, make_alert, route, reply,
                                                            reason):
    if reply is not None:
        world.fake.script(f"hooks/{HOOK}", reply)
    alert = alert_to(make_alert, route)
    world.publish(alert)
    delivery = world.start()
    await eventually(lambda: metric(delivery, "eduhub_slack_dead_lettered_total",
                                    reason=reason) == 1)
    assert world.pending() == 0
    [(_, fields)] = world.dead()
    assert fields["reason"] == reason
    [error] = json.loads(fields["errors"])
    assert error["route"] == f"webhook:{route['webhook']}"
    assert "webhook-secret" not in json.dumps(fields) and "/hooks/" not in json.dumps(fields)
    assert len(world.fake.webhook_posts(HOOK)) == (1 if reply is not None else 0)


async def test_webhooks_are_paced_per_name(world, make_alert):
    world.publish(alert_to(make_alert, {"webhook": "staffroom"}, {"channel": "C1"},
                           title="one"))
    world.publish(alert_to(make_alert, {"webhook": "staffroom"}, title="two"))
    world.start(slack_pace_seconds=0.3, slack_bot_token=SecretStr("xoxb-test"))
    await eventually(lambda: len(world.fake.webhook_posts(HOOK)) == 2 and world.pending() == 0)
    first, second = world.fake.webhook_posts(HOOK)
    assert second.at - first.at >= 0.3
    [channel_post] = world.fake.posts()
    assert channel_post.at - first.at < 0.3  # the channel did not wait for the webhook


async def test_delivery_runs_in_the_app_with_webhooks_only(start_sidecar, fake_slack,  # noqa: F811
                                                          make_alert, redis_client):
    sidecar = await start_sidecar(slack_webhooks={"staffroom": fake_slack.webhook_url(HOOK)},
                                  slack_pace_seconds=0.0, reader_block_ms=50)
    assert isinstance(sidecar.app.state.slack_delivery, SlackDelivery)
    redis_client.xadd(sidecar.settings.stream_key, {"alert": json.dumps(
        alert_to(make_alert, {"webhook": "staffroom"}))})
    await eventually(lambda: len(fake_slack.webhook_posts(HOOK)) == 1)
