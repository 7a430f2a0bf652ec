"""The bodies: keel's JSON document, the Slack message and the email's parts."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
import pytest

from keel.notify import Alert, Notification
from keel.notify.mail import build_message, subject
from keel.notify.payloads import SLACK_ALERTS, json_body, slack_document
from tests.notify.builders import STARTED, alert, notification


def test_the_json_document_carries_every_field_of_the_alerts() -> None:
    ended = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    n = notification(alert(), alert(rule="p95_latency_up", severity="warning", value=math.nan,
                                    ended_at=ended))
    doc = orjson.loads(json_body(n))
    assert doc["version"] == 1 and doc["id"] == n.id
    assert (doc["group_key"], doc["status"], doc["severity"]) == (
        "feature=summarize", "firing", "critical")
    assert doc["group_labels"] == {"feature": "summarize"}
    first, second = doc["alerts"]
    assert first == {
        "rule": "cost_per_request_up", "status": "firing", "severity": "critical",
        "reason": "cost per request rose 42% against last week",
        "labels": {"feature": "summarize", "team": "support", "model": "gpt-4o"},
        "value": 0.0142, "threshold": 0.012, "baseline": 0.01,
        "links": {"console": "https://keel.example.com/costs?feature=summarize"},
        "started_at": "2026-12-03T09:30:00Z", "ended_at": None}
    assert second["status"] == "resolved" and second["ended_at"] == "2026-12-03T10:00:00Z"
    assert second["value"] is None  # NaN is not JSON


def test_the_slack_message_has_a_text_a_header_and_a_section_per_alert() -> None:
    doc = slack_document(notification(alert()))
    assert doc["text"].startswith("[FIRING:1] critical: cost_per_request_up "
                                  "(feature=summarize): cost per request rose 42%")
    header, divider, section, context = doc["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": (
        "[FIRING:1] critical: cost_per_request_up (feature=summarize)")}}
    assert divider == {"type": "divider"}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    text = section["text"]["text"]
    assert "*cost_per_request_up* (critical, firing)" in text
    assert "value: `0.0142`  threshold: `0.012`  baseline: `0.01`" in text
    assert "`feature=summarize` `model=gpt-4o` `team=support`" in text
    assert section["accessory"] == {
        "type": "button", "text": {"type": "plain_text", "text": "Open in console"},
        "url": "https://keel.example.com/costs?feature=summarize"}
    assert context["elements"][0]["text"] == "since 2026-12-03T09:30:00Z"


def test_slack_text_from_alerts_cannot_inject_links_or_mentions() -> None:
    n = notification(alert(reason="see <https://evil.example|here> <!channel> & more",
                           labels={"feature": "<@U123>"}))
    doc = slack_document(n)
    text = doc["blocks"][2]["text"]["text"]
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt; &amp; more" in text and "`feature=&lt;@U123&gt;`" in text
    assert "<!channel>" not in doc["text"]


def test_a_console_link_that_is_not_http_gets_no_button() -> None:
    doc = slack_document(notification(alert(links={"console": "javascript:alert(1)"})))
    assert "accessory" not in doc["blocks"][2]


def test_a_large_group_shows_the_first_alerts_and_counts_the_rest() -> None:
    n = notification(*(alert(rule=f"rule_{i}") for i in range(SLACK_ALERTS + 3)))
    doc = slack_document(n)
    assert sum(b["type"] == "section" for b in doc["blocks"]) == SLACK_ALERTS
    assert doc["blocks"][-1]["elements"][0]["text"] == "and 3 more alerts"
    assert len(doc["blocks"]) <= 50  # Slack's limit
    assert doc["blocks"][0]["text"]["text"].startswith("[FIRING:13] critical: rule_0 and 12 more")


def test_long_text_is_cut_to_slacks_limits() -> None:
    doc = slack_document(notification(alert(rule="r" * 400, reason="x" * 5000)))
    assert len(doc["blocks"][0]["text"]["text"]) == 150
    assert len(doc["blocks"][2]["text"]["text"]) == 3000


def test_a_resolved_notification_says_so() -> None:
    n = notification(alert(ended_at=STARTED), status="resolved")
    assert n.title() == "[RESOLVED:1] critical: cost_per_request_up (feature=summarize)"
    assert "(critical, resolved)" in slack_document(n)["blocks"][2]["text"]["text"]


def test_the_email_has_a_subject_a_text_and_an_html_body() -> None:
    n = notification(alert(reason="cost <b>rose</b>\nsharply"))
    msg = build_message(n, "keel@example.com", ["a@example.com", "b@example.com"])
    assert msg["Subject"] == ("[keel] [FIRING:1] critical: cost_per_request_up "
                              "(feature=summarize): cost <b>rose</b> sharply")
    assert msg["To"] == "a@example.com, b@example.com" and msg["From"] == "keel@example.com"
    text = msg.get_body(("plain",))
    page = msg.get_body(("html",))
    assert text is not None and page is not None
    plain, markup = text.get_content(), page.get_content()
    assert "value 0.0142, threshold 0.012, baseline 0.01" in plain
    assert "console: https://keel.example.com/costs?feature=summarize" in plain
    assert "cost &lt;b&gt;rose&lt;/b&gt;" in markup and "<b>rose" not in markup
    assert '<a href="https://keel.example.com/costs?feature=summarize">console</a>' in markup


def test_the_subject_stays_one_short_line() -> None:
    n = notification(alert(reason="a\r\nBcc: victim@example.com " + "x" * 300))
    text = subject(n)
    assert "\n" not in text and "\r" not in text and len(text) == 200


@pytest.mark.parametrize("bad", [{"severity": "info"}, {"rule": ""}])
def test_an_alert_with_a_bad_field_is_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        alert(**bad)


def test_a_notification_needs_an_alert_and_a_known_status() -> None:
    with pytest.raises(ValueError):
        Notification(group_key="g", status="firing", alerts=())
    with pytest.raises(ValueError):
        Notification(group_key="g", status="pending", alerts=(alert(),))  # type: ignore[arg-type]
    assert isinstance(Notification(group_key="g", status="firing",
                                   alerts=[alert()]).alerts, tuple)  # type: ignore[arg-type]


def test_the_severity_of_a_group_is_its_gravest() -> None:
    warn: Alert = alert(severity="warning")
    assert notification(warn).severity == "warning"
    assert notification(warn, alert()).severity == "critical"
