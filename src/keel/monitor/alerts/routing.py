"""From firing alerts to notifications: silences, inhibition, grouping, re-notification.

Pure (no store, no clock of its own), like ``tracking``:

- ``silenced_by``: the silences whose matchers all hold for an alert (rule and series
  labels, exact values). A silenced alert is still evaluated and tracked; it is only not
  notified, and shown as silenced.
- ``inhibited_by``: while a source alert fires, target alerts with the same ``equal``
  labels are not notified (``keel.config.alerts.Inhibition``). The built-in one fits an LLM
  stack: a feature whose availability or error rate is in alert (critical) mutes its
  quality, cost and latency alerts, which are the outage's effects.
- ``plan``: per group (alerts with the same ``group_by`` labels) whether to notify now: a
  group's first firing, a change in its alerts or their severities, ``repeat_interval``
  passed while it still fires, and its resolution (every alert it notified has resolved).
  The groups' rows come back to be stored, so a restart or another replica carries on
  without re-sending. Silenced and inhibited alerts are left out of a group without
  counting as resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from keel.config.alerts import AlertMatch, Inhibition
from keel.monitor.alerts.model import Evaluation, State
from keel.notify.model import Alert, Notification

__all__ = ["BUILTIN_INHIBITIONS", "Candidate", "GroupPlan", "inhibited_by", "plan",
           "silenced_by"]

BUILTIN_INHIBITIONS: tuple[Inhibition, ...] = (
    Inhibition(
        source=AlertMatch(measure=["availability", "error_rate"], severity=["critical"]),
        target=AlertMatch(measure=["acceptance_rate", "rework_rate", "escalation_rate",
                                   "critical_errors_per_1k", "cost_per_request_usd",
                                   "cost_per_value_unit_usd", "latency_p95_ms", "fallbacks"]),
        equal=["feature"]),
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A firing alert (its track is firing), before silences and inhibition."""

    key: str
    rule: str
    kind: str  # the rule's kind: threshold | change | anomaly | divergence
    measure: str
    severity: str  # warning | critical
    evaluation: Evaluation
    fired_at: float

    @property
    def labels(self) -> dict[str, str]:
        return {"rule": self.rule, **self.evaluation.series}


def severity_of(state: State) -> str:
    return "critical" if state is State.ALERT else "warning"


def _matcher_holds(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in matchers.items())


def silenced_by(labels: Mapping[str, str], silences: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ids of the ``silences`` (rows with ``id`` and ``matchers``, already known to be
    in force) that hold for an alert with these labels."""
    return [s["id"] for s in silences if _matcher_holds(s["matchers"], labels)]


def _match(m: AlertMatch, c: Candidate) -> bool:
    return ((not m.rule or c.rule in m.rule) and (not m.measure or c.measure in m.measure)
            and (not m.severity or c.severity in m.severity))


def inhibited_by(candidates: Sequence[Candidate],
                 inhibitions: Sequence[Inhibition]) -> dict[str, str]:
    """Alert key -> the key of a firing alert that inhibits it. An alert never inhibits
    itself; an inhibited alert still inhibits others (as in Alertmanager)."""
    out: dict[str, str] = {}
    for rule in inhibitions:
        sources = [c for c in candidates if _match(rule.source, c)]
        if not sources:
            continue
        for target in candidates:
            if target.key in out or not _match(rule.target, target):
                continue
            for src in sources:
                if src.key == target.key:
                    continue
                if all(name not in src.evaluation.series
                       or src.evaluation.series[name] == target.evaluation.series.get(name)
                       for name in rule.equal):
                    out[target.key] = src.key
                    break
    return out


@dataclass(slots=True)
class GroupPlan:
    notifications: list[Notification] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # alert_groups rows to store


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _group(labels: Mapping[str, str], group_by: Sequence[str]) -> tuple[str, dict[str, str]]:
    chosen = {name: labels[name] for name in group_by if labels.get(name)}
    return ",".join(f"{k}={v}" for k, v in sorted(chosen.items())) or "all", chosen


def _alert(c: Candidate, public_url: str | None, ended: float | None) -> Alert:
    ev = c.evaluation
    links = {}
    if public_url:
        query = urlencode({"rule": c.rule, **ev.series})
        links["console"] = f"{public_url.rstrip('/')}/alerts?{query}"
    # a threshold rule compares with the level crossed; the others with a baseline (the
    # window before, the series' history, its peers)
    threshold, baseline = ((ev.compared_with, None) if c.kind == "threshold"
                           else (None, ev.compared_with))
    return Alert(rule=c.rule, severity=c.severity,  # type: ignore[arg-type]
                 reason=ev.reason, started_at=_when(c.fired_at), labels=c.labels,
                 value=ev.value, threshold=threshold, baseline=baseline, links=links,
                 ended_at=_when(ended) if ended is not None else None)


def plan(notify: Sequence[Candidate], muted: Iterable[str],
         resolved: Mapping[str, Candidate], stored: Mapping[str, Mapping[str, Any]], *,
         group_by: Sequence[str], repeat_s: float, now: float,
         public_url: str | None = None) -> GroupPlan:
    """The notifications to send now and the group rows to store.

    ``notify``: firing alerts to notify (not silenced, not inhibited); ``muted``: keys of
    firing alerts that are silenced or inhibited; ``resolved``: alerts no longer firing, by
    key, as last evaluated (a group that notified them says they resolved); ``stored``: the
    groups' rows as stored (``alert_groups``)."""
    muted = set(muted)
    by_group: dict[str, list[Candidate]] = {}
    labels_of: dict[str, dict[str, str]] = {}
    for c in notify:
        key, labels = _group(c.labels, group_by)
        by_group.setdefault(key, []).append(c)
        labels_of[key] = labels
    out = GroupPlan()
    for key in sorted(set(by_group) | {k for k, g in stored.items() if g["status"] == "firing"}):
        firing = sorted(by_group.get(key, []), key=lambda c: c.key)
        row = stored.get(key)
        before: dict[str, str] = dict(row["alerts"]) if row and row["status"] == "firing" else {}
        gone = [resolved[k] for k in sorted(before) if k in resolved]
        kept = {k: before[k] for k in before if k in muted}  # muted: neither new nor resolved
        now_alerts = {c.key: c.severity for c in firing}
        labels = labels_of.get(key) or (dict(row["labels"]) if row else {})
        if firing:
            changed = now_alerts != {k: v for k, v in before.items() if k not in kept}
            due = row is None or row["status"] != "firing" or changed \
                or now - float(row["notified_at"]) >= repeat_s
            if not due:
                continue
            alerts = tuple([_alert(c, public_url, None) for c in firing]
                           + [_alert(c, public_url, now) for c in gone])
            out.notifications.append(Notification(key, "firing", alerts, labels))
            first = float(row["first_at"]) if row and row["status"] == "firing" else now
            out.rows.append({"group_key": key, "labels": labels, "status": "firing",
                             "alerts": {**kept, **now_alerts}, "first_at": first,
                             "notified_at": now, "resolved_at": None})
        elif kept and not gone:
            continue  # only muted alerts left: nothing to say, the group still fires
        elif gone or before:
            if gone:
                alerts = tuple(_alert(c, public_url, now) for c in gone)
                out.notifications.append(Notification(key, "resolved", alerts, labels))
            if kept:  # some resolved, the rest muted: the group fires on, quietly
                out.rows.append({**dict(row or {}), "group_key": key, "labels": labels,
                                 "alerts": kept, "notified_at": now})
            else:
                out.rows.append({"group_key": key, "labels": labels, "status": "resolved",
                                 "alerts": {}, "first_at": float(row["first_at"]) if row
                                 else now, "notified_at": now, "resolved_at": now})
    return out
