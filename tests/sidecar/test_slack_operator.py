"""Slack delivery inside a running sidecar, and the operator's view: metrics,
the authenticated /dead-letters endpoints, and the dead-letters command."""

from eduhub_alerts_sidecar import cli

from tests.sidecar.fake_slack import Reply, fake_slack  # noqa: F401 (fixture)
from tests.sidecar.helpers import http_client
from tests.sidecar.test_slack_delivery import eventually

import io
import json
import pytest


@pytest.fixture
async def slack_sidecar(start_sidecar, fake_slack):  # noqa: F811
    return await start_sidecar(slack_bot_token="xoxb-test", slack_base_url=fake_slack.base_url,
                               reader_block_ms=50, slack_pace_seconds=0.0, slack_max_retries=0)


def dead(redis_client, sidecar):
    return redis_client.xrange(sidecar.settings.dead_letter_key)


async def test_running_sidecar_posts_to_slack_and_counts_it(slack_sidecar, fake_slack,  # noqa: F811
                                                            publish, make_alert):
    publish(slack_sidecar, make_alert())
    await eventually(lambda: fake_slack.posts()
                     and slack_sidecar.metric("eduhub_alerts_sent_total", channel="slack") == 1)
    async with http_client(slack_sidecar) as client:
        text = (await client.get("/metrics")).text
    assert 'eduhub_alerts_sent_total{channel="slack"} 1.0' in text
    assert "eduhub_slack_request_duration_seconds_bucket" in text
    assert "eduhub_slack_retries_total 0.0" in text


async def test_dead_letters_endpoint_lists_and_redrives(slack_sidecar, fake_slack,  # noqa: F811
                                                        publish, make_alert, make_token,
                                                        redis_client):
    fake_slack.script("chat.postMessage", Reply.error("not_in_channel"))
    alert = make_alert()
    publish(slack_sidecar, alert)
    await eventually(lambda: dead(redis_client, slack_sidecar))
    writer = {"Authorization": f"Bearer {make_token(scope='alerts:read alerts:write')}"}
    async with http_client(slack_sidecar) as client:
        listed = (await client.get("/dead-letters", headers=writer)).json()["dead_letters"]
        assert [(d["alert"]["id"], d["reason"]) for d in listed] == [(alert["id"],
                                                                      "not_in_channel")]
        answer = await client.post(f"/dead-letters/{listed[0]['id']}/redrive", headers=writer)
        assert answer.status_code == 200
        assert answer.json()["redriven"] is True
        assert answer.json()["routes"][0]["status"] == "sent"
        missing = await client.post(f"/dead-letters/{listed[0]['id']}/redrive", headers=writer)
        assert missing.status_code == 404
    assert len(fake_slack.posts()) == 2
    assert dead(redis_client, slack_sidecar) == []


async def test_dead_letters_endpoint_needs_alerts_write(slack_sidecar, make_token):
    reader = {"Authorization": f"Bearer {make_token(scope='alerts:read')}"}
    async with http_client(slack_sidecar) as client:
        assert (await client.get("/dead-letters")).status_code == 401
        assert (await client.get("/dead-letters", headers=reader)).status_code == 403
        assert (await client.post("/dead-letters/1-0/redrive", headers=reader)).status_code == 403


async def test_without_a_token_slack_delivery_is_off(sidecar, make_token):
    writer = {"Authorization": f"Bearer {make_token(scope='alerts:write')}"}
    assert sidecar.app.state.slack_delivery is None
    async with http_client(sidecar) as client:
        assert (await client.get("/dead-letters", headers=writer)).status_code == 503
        assert (await client.post("/dead-letters/1-0/redrive", headers=writer)).status_code == 503


async def test_dead_letters_command_lists_and_redrives(make_settings, fake_slack,  # noqa: F811
                                                       redis_client, make_alert):
    settings = make_settings(slack_bot_token="xoxb-test", slack_base_url=fake_slack.base_url,
                             slack_pace_seconds=0.0)
    alerts = [make_alert(), make_alert()]
    for n, alert in enumerate(alerts):
        redis_client.xadd(settings.dead_letter_key, {
            "alert": json.dumps(alert), "alert_id": alert["id"], "stream_id": f"{n + 1}-0",
            "reason": "channel_not_found", "errors": "[]", "attempts": 1, "consumer": "a",
            "failed_at": "2026-12-03T09:15:00+00:00"})
    out = io.StringIO()
    assert await cli.dead_letters_command(settings, "list", [], out=out) == 0
    listed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["alert"]["id"] for d in listed] == [a["id"] for a in alerts]

    fake_slack.script("chat.postMessage", Reply.error("channel_not_found"))
    out = io.StringIO()
    assert await cli.dead_letters_command(settings, "redrive", [], out=out) == 1
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["redriven"] for r in results] == [False, True]
    assert len(redis_client.xrange(settings.dead_letter_key)) == 1

    out = io.StringIO()
    assert await cli.dead_letters_command(settings, "redrive", ["9-9"], out=out) == 1
    assert json.loads(out.getvalue())["routes"] is None


async def test_dead_letters_command_redrive_needs_a_token(make_settings, capsys):
    assert await cli.dead_letters_command(make_settings(), "redrive", []) == 2
    assert "EDUHUB_SLACK_BOT_TOKEN" in capsys.readouterr().err


def test_dead_letters_command_line(monkeypatch):
    calls = []

    async def fake_command(settings, action, ids, count):
        calls.append((action, ids, count))
        return 0

    monkeypatch.setattr(cli, "dead_letters_command", fake_command)
    with pytest.raises(SystemExit) as exited:
        cli.main(["dead-letters", "redrive", "1-0", "2-0", "--count", "5"])
    assert exited.value.code == 0
    assert calls == [("redrive", ["1-0", "2-0"], 5)]
