"""The Slack message of an alert: Block Kit layout, mrkdwn conversion,
escaping, severity at a glance, and Slack's limits kept by truncation."""

from eduhub_alerts_sidecar.slack_messages import (
    HEADER_MAX,
    SECTION_MAX,
    build_message,
    markdown_to_mrkdwn,
    plain_text,
    truncate,
)

import pytest


def blocks_of(message, kind):
    return [block for block in message.blocks if block["type"] == kind]


def test_layout_header_section_fields_button_context(sample_alert):
    message = build_message(sample_alert)
    assert [b["type"] for b in message.blocks] == [
        "header", "section", "section", "actions", "context"]
    header = message.blocks[0]["text"]
    assert header["type"] == "plain_text"
    assert header["text"] == ":white_check_mark: Published: Timetable for spring term"
    fields = [f["text"] for f in message.blocks[2]["fields"]]
    assert fields[0] == "*State*\npublished (publish)"
    assert fields[1] == "*Object*\n/Plone/news/timetable-spring (Document)"
    assert fields[2] == "*Actor*\njane"
    assert fields[3].startswith("*Time*\n<!date^") and "|2026-12-03T09:15:00Z>" in fields[3]
    button = message.blocks[3]["elements"][0]
    assert button["url"] == sample_alert["url"]
    context = message.blocks[4]["elements"][0]["text"]
    assert "*SUCCESS*" in context and "Site: Plone" in context


def test_plain_text_fallback(sample_alert):
    message = build_message(sample_alert)
    assert message.text == ("[SUCCESS] Published: Timetable for spring term: "
                            "Timetable for spring term was published by Jane Editor.")


@pytest.mark.parametrize("severity, emoji", [
    ("info", ":information_source:"), ("warning", ":warning:"), ("error", ":x:"),
    ("critical", ":rotating_light:"),
])
def test_severity_is_visible_at_a_glance(sample_alert, severity, emoji):
    message = build_message({**sample_alert, "severity": severity})
    assert message.blocks[0]["text"]["text"].startswith(emoji)
    assert message.text.startswith(f"[{severity.upper()}]")


def test_errors_get_a_danger_button(sample_alert):
    message = build_message({**sample_alert, "severity": "critical"})
    assert blocks_of(message, "actions")[0]["elements"][0]["style"] == "danger"


@pytest.mark.parametrize("markdown, mrkdwn", [
    ("**bold**", "*bold*"),
    ("__bold__", "*bold*"),
    ("*italic*", "_italic_"),
    ("_italic_", "_italic_"),
    ("~~gone~~", "~gone~"),
    ("[the page](https://example.org/a?b=1)", "<https://example.org/a?b=1|the page>"),
    ("[**x** & y](https://e.org)", "<https://e.org|*x* &amp; y>"),
    ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
    ("<script>", "&lt;script&gt;"),
    ("`**code** <x>`", "`**code** &lt;x&gt;`"),
    ("2 * 3 * 4", "2 * 3 * 4"),
    ("**bold** and *it*", "*bold* and _it_"),
])
def test_markdown_becomes_mrkdwn(markdown, mrkdwn):
    assert markdown_to_mrkdwn(markdown) == mrkdwn


def test_plain_text_drops_markup():
    assert plain_text("**a** [b](http://c) `d`") == "a b (http://c) d"


def test_long_title_and_message_are_truncated_with_an_ellipsis(sample_alert):
    message = build_message({**sample_alert, "title": "T" * 500, "message": "m" * 10_000})
    header = message.blocks[0]["text"]["text"]
    section = message.blocks[1]["text"]["text"]
    assert len(header) == HEADER_MAX and header.endswith("…")
    assert len(section) == SECTION_MAX and section.endswith("…")
    assert len(message.text) <= 3000
    assert len(message.blocks) <= 50


def test_truncation_never_leaves_half_a_link():
    text = "x" * 10 + "<https://example.org/very/long|label>"
    cut = truncate(text, 20)
    assert cut == "x" * 10 + "…"
    assert truncate("short", 20) == "short"


def test_minimal_alert_still_makes_a_message():
    message = build_message({"topic": "manual", "severity": "info", "title": "Hi",
                             "message": "", "created_at": "not a date"})
    assert [b["type"] for b in message.blocks] == ["header", "section", "context"]
    assert message.blocks[1]["fields"][0]["text"] == "*Time*\nnot a date"
    assert message.text == "[INFO] Hi"


def test_overlong_url_leaves_the_button_out(sample_alert):
    message = build_message({**sample_alert, "url": "https://e.org/" + "a" * 3000})
    assert not blocks_of(message, "actions")


def test_note_goes_into_the_context(sample_alert):
    message = build_message(sample_alert, note="Latest state; see the thread")
    assert "Latest state; see the thread" in blocks_of(message, "context")[0]["elements"][0]["text"]
