"""An alert as a Slack message: Block Kit blocks plus a plain-text fallback.

Layout: a header (severity emoji + title), a section with the alert's
Markdown converted to Slack mrkdwn, a section of fields (state, object, actor,
time), a button to open the object, and a context line with site, topic and
severity. Slack's limits are respected by truncating with an ellipsis rather
than having the message rejected: header 150 characters, section text 3,000,
a field 2,000, a button URL 3,000, at most 50 blocks.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

import re


HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
URL_MAX = 3000
FALLBACK_MAX = 3000
MAX_BLOCKS = 50
ELLIPSIS = "…"

SEVERITY_EMOJI = {
    "info": ":information_source:",
    "success": ":white_check_mark:",
    "warning": ":warning:",
    "error": ":x:",
    "critical": ":rotating_light:",
}


@dataclass
class SlackMessage:
    """What ``chat.postMessage`` / ``chat.update`` get: ``text`` and ``blocks``."""

    text: str
    blocks: list[dict] = field(default_factory=list)

    def as_params(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with an ellipsis when cut.

    A cut never leaves half a ``<url|label>`` link behind (Slack would show it raw).
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    return cut + ELLIPSIS


def escape(text: str) -> str:
    """Escape Slack's three control characters ``&``, ``<`` and ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"(`[^`\n]+`)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x00"


def _inline(text: str) -> str:
    # Bold first, through a marker, so its stars are not read as italics.
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC_STAR.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    return text.replace(_BOLD_MARK, "*")


def markdown_to_mrkdwn(markdown: str) -> str:
    """Convert the alert's Markdown to Slack mrkdwn.

    ``**bold**`` -> ``*bold*``, ``*italic*`` and ``_italic_`` -> ``_italic_``,
    ``~~strike~~`` -> ``~strike~``, ``[text](url)`` -> ``<url|text>``; inline
    code is left alone; ``&``, ``<`` and ``>`` are escaped everywhere else.
    """
    out = []
    position = 0
    for match in _LINK.finditer(markdown):
        out.append(_convert_text(markdown[position:match.start()]))
        label = escape(match.group(1)).replace("|", "¦")
        url = match.group(2).replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
        out.append(f"<{url}|{_inline(label)}>")
        position = match.end()
    out.append(_convert_text(markdown[position:]))
    return "".join(out)


def _convert_text(text: str) -> str:
    parts = _CODE.split(text)
    # Odd parts are code spans: escaped, never formatted.
    return "".join(escape(part) if i % 2 else _inline(escape(part)) for i, part in enumerate(parts))


def plain_text(markdown: str) -> str:
    """The message without Markdown markup, for the notification fallback."""
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", markdown)
    return re.sub(r"(\*\*|__|\*|~~|`)", "", text)


def _slack_date(value: str) -> str:
    # <!date^epoch^format|fallback> shows the time in each reader's time zone.
    try:
        epoch = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return escape(value)
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{escape(value)}>"


def _fields(alert: Mapping[str, Any]) -> list[MarkdownTextObject]:
    source = alert.get("source") or {}
    state = source.get("review_state")
    if state and source.get("transition"):
        state = f"{state} ({source['transition']})"
    obj = source.get("path") or source.get("uid")
    if obj and source.get("portal_type"):
        obj = f"{obj} ({source['portal_type']})"
    rows = [("State", state), ("Object", obj), ("Actor", source.get("actor"))]
    fields = [
        MarkdownTextObject(text=truncate(f"*{name}*\n{escape(str(value))}", FIELD_MAX))
        for name, value in rows if value
    ]
    if alert.get("created_at"):
        fields.append(MarkdownTextObject(text=f"*Time*\n{_slack_date(alert['created_at'])}"))
    return fields


def build_message(alert: Mapping[str, Any], *, note: str | None = None) -> SlackMessage:
    """The Slack message for ``alert`` (a valid alert, version 1).

    ``note`` adds a context line (the thread parent says it shows the latest state).
    """
    severity = str(alert.get("severity", "info"))
    emoji = SEVERITY_EMOJI.get(severity, SEVERITY_EMOJI["info"])
    title = str(alert.get("title") or alert.get("topic") or "Alert")
    blocks: list = [HeaderBlock(text=PlainTextObject(
        text=truncate(f"{emoji} {title}", HEADER_MAX), emoji=True))]
    message = str(alert.get("message") or "")
    if message.strip():
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=truncate(markdown_to_mrkdwn(message), SECTION_MAX))))
    fields = _fields(alert)
    if fields:
        blocks.append(SectionBlock(fields=fields))
    url = alert.get("url")
    if url and len(url) <= URL_MAX:  # a cut URL would lead nowhere: leave the button out
        blocks.append(ActionsBlock(elements=[ButtonElement(
            text="Open", url=url, action_id="open_object",
            style="danger" if severity in ("error", "critical") else None)]))
    source = alert.get("source") or {}
    context = [f"{emoji} *{severity.upper()}*", f"`{escape(str(alert.get('topic', '')))}`"]
    if source.get("site"):
        context.append(f"Site: {escape(str(source['site']))}")
    if note:
        context.append(escape(note))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=" · ".join(context))]))
    fallback = f"[{severity.upper()}] {title}"
    if message.strip():
        fallback += f": {plain_text(message)}"
    return SlackMessage(
        text=truncate(fallback, FALLBACK_MAX),
        blocks=[block.to_dict() for block in blocks[:MAX_BLOCKS]],
    )
