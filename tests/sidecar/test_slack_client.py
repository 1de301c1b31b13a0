"""SlackClient against a real HTTP server speaking the Slack Web API: posts,
DMs, back-off on 429 / 5xx / dropped connections / timeouts, permanent errors,
and a token that never shows up in logs."""

from eduhub_alerts_sidecar.slack_client import (
    FullJitterBackoff,
    SlackAPIError,
    SlackClient,
    SlackPermanentError,
    route_key,
)
from eduhub_alerts_sidecar.slack_messages import SlackMessage

from tests.sidecar.fake_slack import Reply, fake_slack, make_slack_client, retries  # noqa: F401 (fixtures)

import functools
import logging
import pytest


TOKEN = "xoxb-test-0123456789-secret"


@pytest.fixture
def make_client(make_slack_client):  # noqa: F811
    return functools.partial(make_slack_client, TOKEN)


async def test_post_to_channel_returns_where_the_message_landed(make_client, fake_slack,  # noqa: F811
                                                                 sample_alert):
    client = make_client()
    posted = await client.send_alert({"channel": "C1"}, sample_alert)
    assert posted.channel == "C1" and posted.ts
    [request] = fake_slack.posts()
    assert request.params["channel"] == "C1"
    assert request.params["blocks"][0]["type"] == "header"
    assert request.params["text"].startswith("[SUCCESS]")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert client.metrics.registry.get_sample_value(
        "eduhub_slack_request_duration_seconds_count", {"method": "chat.postMessage"}) == 1


async def test_post_to_user_opens_the_dm_once(make_client, fake_slack, sample_alert):  # noqa: F811
    client = make_client()
    first = await client.send_alert({"user": "U7"}, sample_alert)
    second = await client.send_alert({"user": "U7"}, sample_alert)
    assert first.channel == second.channel == "DU7"
    assert len(fake_slack.calls("conversations.open")) == 1
    assert [r.channel for r in fake_slack.posts()] == ["DU7", "DU7"]


async def test_rate_limited_three_times_then_ok(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script("chat.postMessage", *[Reply.rate_limited(0.05)] * 3)
    client = make_client()
    assert (await client.send_alert({"channel": "C1"}, sample_alert)).ts
    assert len(fake_slack.posts()) == 4
    assert retries(client) == 3


async def test_rate_limited_beyond_three_retries_raises_slack_api_error(make_client, fake_slack,  # noqa: F811
                                                                        sample_alert):
    fake_slack.script("chat.postMessage", *[Reply.rate_limited(0.01)] * 4)
    client = make_client()
    with pytest.raises(SlackAPIError) as caught:
        await client.send_alert({"channel": "C1"}, sample_alert)
    assert caught.value.reason == "ratelimited"
    assert not isinstance(caught.value, SlackPermanentError)
    assert len(fake_slack.posts()) == 4
    assert retries(client) == 3


async def test_retry_after_is_honoured(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script("chat.postMessage", Reply.rate_limited(1))
    client = make_client(retry_after_jitter=0.2)
    await client.send_alert({"channel": "C1"}, sample_alert)
    first, second = fake_slack.posts()
    assert 1.0 <= second.at - first.at < 1.2 + 0.5


async def test_server_errors_are_retried_with_backoff(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script("chat.postMessage", Reply.server_error(500), Reply.server_error(502))
    client = make_client()
    assert (await client.send_alert({"channel": "C1"}, sample_alert)).ts
    assert len(fake_slack.posts()) == 3
    assert retries(client) == 2


async def test_server_errors_beyond_the_retries_raise(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script("chat.postMessage", *[Reply.server_error(503)] * 4)
    client = make_client()
    with pytest.raises(SlackAPIError) as caught:
        await client.send_alert({"channel": "C1"}, sample_alert)
    assert caught.value.reason == "http_503"


async def test_dropped_connection_is_retried(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script("chat.postMessage", Reply(drop=True))
    client = make_client()
    assert (await client.send_alert({"channel": "C1"}, sample_alert)).ts
    assert len(fake_slack.posts()) == 2
    assert retries(client) == 1


async def test_slow_answer_times_out_and_is_retried(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script("chat.postMessage", Reply(delay=1.0))
    client = make_client(timeout=0.2)
    assert (await client.send_alert({"channel": "C1"}, sample_alert)).ts
    assert len(fake_slack.posts()) == 2


async def test_timeouts_beyond_the_retries_raise(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script("chat.postMessage", *[Reply(delay=0.5)] * 2)
    client = make_client(timeout=0.1, max_retries=1)
    with pytest.raises(SlackAPIError) as caught:
        await client.send_alert({"channel": "C1"}, sample_alert)
    assert caught.value.reason in ("timeout", "connection")


async def test_unreachable_slack_raises_connection_error(make_client, sample_alert):
    client = make_client(base_url="http://127.0.0.1:9/api/", max_retries=1)
    with pytest.raises(SlackAPIError) as caught:
        await client.send_alert({"channel": "C1"}, sample_alert)
    assert caught.value.reason == "connection"


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "invalid_auth",
                                   "missing_scope", "is_archived", "account_inactive"])
async def test_permanent_errors_are_not_retried(make_client, fake_slack, sample_alert, error):  # noqa: F811
    fake_slack.script("chat.postMessage", Reply.error(error))
    client = make_client()
    with pytest.raises(SlackPermanentError) as caught:
        await client.send_alert({"channel": "C1"}, sample_alert)
    assert caught.value.reason == error
    assert len(fake_slack.posts()) == 1
    assert retries(client) == 0


async def test_other_slack_errors_are_transient(make_client, fake_slack, sample_alert):  # noqa: F811
    fake_slack.script("chat.postMessage", Reply.error("internal_error"))
    client = make_client()
    with pytest.raises(SlackAPIError) as caught:
        await client.send_alert({"channel": "C1"}, sample_alert)
    assert caught.value.reason == "internal_error"
    assert not isinstance(caught.value, SlackPermanentError)


async def test_update_and_thread_reply(make_client, fake_slack):  # noqa: F811
    client = make_client()
    message = SlackMessage(text="hello")
    parent = await client.post_message("C1", message)
    await client.post_message("C1", message, thread_ts=parent.ts)
    await client.update_message("C1", parent.ts, message)
    assert fake_slack.posts()[1].params["thread_ts"] == parent.ts
    assert fake_slack.calls("chat.update")[0].params["ts"] == parent.ts


def test_a_route_names_a_channel_or_a_user():
    assert route_key({"channel": "C1"}) == "channel:C1"
    assert route_key({"user": "U1"}) == "user:U1"
    with pytest.raises(SlackPermanentError):
        route_key({})


def test_full_jitter_stays_within_the_capped_exponential():
    backoff = FullJitterBackoff(1.0, 5.0, rng=lambda low, high: high)
    assert [backoff.calculate_sleep_duration(n) for n in range(4)] == [1.0, 2.0, 4.0, 5.0]


async def test_retry_after_without_a_usable_header_waits_the_default(make_client, fake_slack,  # noqa: F811
                                                                     sample_alert):
    client = make_client()
    handler = client.handlers[0]
    handler.default_wait = 0.01
    fake_slack.script("chat.postMessage", Reply(status=429, body={"ok": False}),
                      Reply.rate_limited("soon"))
    assert (await client.send_alert({"channel": "C1"}, sample_alert)).ts
    assert len(fake_slack.posts()) == 3


async def test_the_token_is_never_logged(make_client, fake_slack, sample_alert, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    fake_slack.script("chat.postMessage", Reply.rate_limited(0.01), Reply.error("invalid_auth"))
    client = make_client()
    with pytest.raises(SlackPermanentError) as caught:
        await client.send_alert({"channel": "C1"}, sample_alert)
    assert TOKEN not in caplog.text
    assert TOKEN not in str(caught.value) and TOKEN not in repr(client)


def test_client_from_settings_reads_the_token_from_a_file(tmp_path, monkeypatch, redis_url):
    from eduhub_alerts_sidecar.settings import Settings

    token_file = tmp_path / "slack_token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("EDUHUB_SLACK_BOT_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("EDUHUB_SLACK_BASE_URL", "http://127.0.0.1:1/api")
    settings = Settings()
    assert TOKEN not in repr(settings)
    client = SlackClient.from_settings(settings)
    assert client.base_url == "http://127.0.0.1:1/api/"
    assert client._token == TOKEN
