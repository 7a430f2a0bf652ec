"""The email of a notification: a clear subject, a plain-text body and an HTML
alternative saying the same (``build_message``)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from keel.notify.model import Alert, Notification
from keel.notify.payloads import measures

_SUBJECT_MAX = 200


def subject(n: Notification) -> str:
    """``[keel] [FIRING:2] critical: rule (feature=x): the first alert's reason``, on one
    line and at most 200 characters."""
    text = f"[keel] {n.title()}"
    if len(n.alerts) == 1:
        text += f": {n.alerts[0].reason}"
    text = " ".join(text.split())  # no line breaks in a header
    return text if len(text) <= _SUBJECT_MAX else text[:_SUBJECT_MAX - 1] + "…"


def _when(alert: Alert) -> str:
    text = f"since {alert.started_at.isoformat()}"
    if alert.ended_at is not None:
        text += f", ended {alert.ended_at.isoformat()}"
    return text


def plain_text(n: Notification) -> str:
    lines = [n.title(), ""]
    for alert in n.alerts:
        lines.append(f"* {alert.rule} ({alert.severity}, {alert.status})")
        lines.append(f"  {alert.reason}")
        numbers = ", ".join(f"{name} {text}" for name, text in measures(alert))
        if numbers:
            lines.append(f"  {numbers}")
        if alert.labels:
            lines.append("  " + " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
        lines.append(f"  {_when(alert)}")
        for name, url in sorted(alert.links.items()):
            lines.append(f"  {name}: {url}")
        lines.append("")
    lines.append(f"group: {n.group_key}")
    return "\n".join(lines) + "\n"


def html_text(n: Notification) -> str:
    e = html.escape
    if n.status == "resolved":
        color = "#1b6e3a"
    else:
        color = "#b3261e" if n.severity == "critical" else "#b26a00"
    parts = ["<!doctype html><html><body style=\"font-family:sans-serif\">",
             f"<h2 style=\"color:{color}\">{e(n.title())}</h2>"]
    for alert in n.alerts:
        parts.append("<div style=\"margin:0 0 1em 0\">")
        parts.append(f"<h3 style=\"margin:0\">{e(alert.rule)} "
                     f"<small>({e(alert.severity)}, {e(alert.status)})</small></h3>")
        parts.append(f"<p style=\"margin:.25em 0\">{e(alert.reason)}</p>")
        numbers = measures(alert)
        if numbers or alert.labels:
            cells = [f"<tr><th align=\"left\">{e(k)}</th><td>{e(v)}</td></tr>"
                     for k, v in [*numbers, *sorted(alert.labels.items())]]
            parts.append("<table>" + "".join(cells) + "</table>")
        parts.append(f"<p style=\"margin:.25em 0;color:#555\">{e(_when(alert))}</p>")
        links = [f"<a href=\"{e(url, quote=True)}\">{e(name)}</a>"
                 for name, url in sorted(alert.links.items())
                 if url.startswith(("https://", "http://"))]
        if links:
            parts.append("<p style=\"margin:.25em 0\">" + " · ".join(links) + "</p>")
        parts.append("</div>")
    parts.append(f"<p style=\"color:#777\">group: {e(n.group_key)}</p></body></html>")
    return "\n".join(parts) + "\n"


def build_message(n: Notification, sender: str, recipients: Sequence[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(n)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=n.id, domain=sender.rpartition("@")[2] or None)
    msg["X-Keel-Group"] = " ".join(n.group_key.split())[:200]
    msg.set_content(plain_text(n))
    msg.add_alternative(html_text(n), subtype="html")
    return msg
