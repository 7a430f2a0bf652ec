"""The bodies keel sends: its JSON document (``json_body``) and a Slack incoming-webhook
message (``slack_body``).

The JSON document (``"version": 1``)::

    {"version": 1, "id": "...", "group_key": "...", "status": "firing",
     "severity": "critical", "title": "[FIRING:1] critical: ...", "group_labels": {...},
     "alerts": [{"rule": "...", "status": "firing", "severity": "critical",
                 "reason": "...", "labels": {...}, "value": 0.42, "threshold": 0.3,
                 "baseline": 0.25, "links": {"console": "https://..."},
                 "started_at": "2026-12-03T10:00:00Z", "ended_at": null}]}

The Slack message has a ``text`` (what notifications and clients without blocks show)
and ``blocks``: a header, one section per alert (at most ``SLACK_ALERTS``, then a line
saying how many more), each alert's console link as a button. Text from the alerts is
escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so a label cannot inject a link or a
mention, and cut to Slack's length limits.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson

from keel.notify.model import Alert, Notification

SLACK_ALERTS = 10  # alerts shown in full; Slack allows 50 blocks a message
_HEADER_MAX = 150  # Slack's limit for a header block's text
_SECTION_MAX = 3000  # ... for a section's text
_URL_MAX = 3000


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def alert_document(alert: Alert) -> dict[str, Any]:
    return {"rule": alert.rule, "status": alert.status, "severity": alert.severity,
            "reason": alert.reason, "labels": dict(alert.labels),
            "value": _number(alert.value), "threshold": _number(alert.threshold),
            "baseline": _number(alert.baseline), "links": dict(alert.links),
            "started_at": _iso(alert.started_at), "ended_at": _iso(alert.ended_at)}


def json_document(n: Notification) -> dict[str, Any]:
    return {"version": 1, "id": n.id, "group_key": n.group_key, "status": n.status,
            "severity": n.severity, "title": n.title(), "group_labels": dict(n.group_labels),
            "alerts": [alert_document(a) for a in n.alerts]}


def json_body(n: Notification) -> bytes:
    return orjson.dumps(json_document(n))


def format_number(v: float | None) -> str:
    """A measured value for people: up to four significant digits, no exponent for the
    usual magnitudes."""
    if v is None:
        return "n/a"
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


def measures(alert: Alert) -> list[tuple[str, str]]:
    """The alert's numbers that are known, as (name, text) pairs."""
    out = [("value", format_number(alert.value))] if alert.value is not None else []
    if alert.threshold is not None:
        out.append(("threshold", format_number(alert.threshold)))
    if alert.baseline is not None:
        out.append(("baseline", format_number(alert.baseline)))
    return out


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _alert_section(alert: Alert) -> list[dict[str, Any]]:
    mark = "🔴" if alert.severity == "critical" else "🟠"
    if alert.status == "resolved":
        mark = "✅"
    lines = [f"{mark} *{_mrkdwn(alert.rule)}* ({alert.severity}, {alert.status})",
             _mrkdwn(alert.reason)]
    numbers = "  ".join(f"{name}: `{text}`" for name, text in measures(alert))
    if numbers:
        lines.append(numbers)
    if alert.labels:
        lines.append(" ".join(f"`{_mrkdwn(k)}={_mrkdwn(v)}`"
                              for k, v in sorted(alert.labels.items())))
    since = f"since {_iso(alert.started_at)}"
    if alert.ended_at is not None:
        since += f", ended {_iso(alert.ended_at)}"
    section: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), _SECTION_MAX)}}
    blocks: list[dict[str, Any]] = [section,
                                    {"type": "context",
                                     "elements": [{"type": "mrkdwn", "text": since}]}]
    console = alert.links.get("console")
    if console and console.startswith(("https://", "http://")) and len(console) <= _URL_MAX:
        section["accessory"] = {"type": "button",
                                "text": {"type": "plain_text", "text": "Open in console"},
                                "url": console}
    return blocks


def slack_document(n: Notification) -> dict[str, Any]:
    title = n.title()
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX)}}]
    for alert in n.alerts[:SLACK_ALERTS]:
        blocks += [{"type": "divider"}, *_alert_section(alert)]
    hidden = len(n.alerts) - SLACK_ALERTS
    if hidden > 0:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {hidden} more alert{'s' if hidden > 1 else ''}"}]})
    first = n.alerts[0]
    text = f"{title}: {first.reason}" if len(n.alerts) == 1 else title
    return {"text": _cut(_mrkdwn(text), _SECTION_MAX), "blocks": blocks}


def slack_body(n: Notification) -> bytes:
    return orjson.dumps(slack_document(n))
