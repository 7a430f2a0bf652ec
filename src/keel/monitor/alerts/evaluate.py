"""Evaluating rules over the rollups: ``evaluate(store, rules, now)``.

Rules are grouped by what they read, (window, scope filters, ``by``), and each group is read
once with ``compare``: one call gives two consecutive windows (the current one and the one
before, four rollup queries), so a group needing windows 0..K costs K/2 + 1 calls whatever
the number of rules or series in it. A ``divergence`` rule with ``within`` reads two
``summary`` calls over its window (series and their groups). Windows end at the end of the
rollup bucket holding ``now`` (minutes for windows up to 2 hours, hours up to 2 days, days
beyond), so the latest, still-filling bucket counts.

The decision itself (levels, changes, z scores) is ``judge``; this module reads and says.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from keel.config.alerts import DRIFT_MEASURES, STATE_MEASURES, AlertRule
from keel.monitor.alerts import judge
from keel.monitor.alerts.model import Evaluation, State
from keel.monitor.alerts.state_rules import evaluate_state_rules
from keel.monitor.alerts.values import label, sample_of, sample_words, value_of
from keel.monitor.compare import compare, granularity_for
from keel.monitor.measures import Filters, measures, summary
from keel.store import Store
from keel.store.drift import latest_reports
from keel.store.rollups import GRANULARITIES

__all__ = ["evaluate", "window_end"]

NONE_LABEL = "(none)"  # the series of traffic without a feature, team or model
_NO_DATA_STATE = {"ok": State.OK, "no_data": State.NO_DATA, "alert": State.ALERT}
_BEFORE = {3600: "the hour before", 86400: "the day before", 7 * 86400: "the week before"}
_PEERS = {"feature": "features", "team": "teams", "model": "models"}
DRIFT_STALE_S = 2 * 86400.0  # a drift report older than this is no data


@dataclass(frozen=True, slots=True)
class _ReadKey:
    window_s: int
    feature: str | None
    team: str | None
    model: str | None
    by: str  # compare's group_by ("feature" when the rule has no by: only the overall is used)


# window index (0 current, 1 the one before, ...) -> series name (None: overall) -> measures
_Windows = dict[int, dict[str | None, dict[str, Any]]]


def window_end(window_s: int, now: float) -> float:
    """Where the windows of this length end: the end of the bucket holding ``now``."""
    size = GRANULARITIES[granularity_for(window_s)]
    return float(math.ceil(now / size) * size)


def _blank() -> dict[str, Any]:
    return measures({"halves": [defaultdict(float), defaultdict(float)],
                     "sketch": {"latency": [], "ttft": []}, "errors": {}}, None)


_BLANK = _blank()


def _key(rule: AlertRule) -> _ReadKey:
    s = rule.scope
    return _ReadKey(rule.window_s, s.feature, s.team, s.model, s.by or "feature")


def _indices(rule: AlertRule) -> set[int]:
    out = {0}
    if rule.kind == "change":
        out.add(rule.windows_back)
    if rule.kind == "anomaly":
        out.update(range(1, rule.history + 1))
    if rule.when:
        out.add(_condition_index(rule))
    return out


def _condition_index(rule: AlertRule) -> int:
    return rule.windows_back if rule.kind == "change" else 1


async def _read(store: Store, key: _ReadKey, indices: Iterable[int], end: float,
                value_units: dict[str, str] | None) -> _Windows:
    out: _Windows = defaultdict(dict)
    w = key.window_s
    filters = Filters(feature=key.feature, team=key.team, model=key.model)
    for j in sorted({i // 2 for i in indices}):
        cmp = await compare(store, end - (2 * j + 1) * w, end - 2 * j * w, filters=filters,
                            group_by=key.by, value_units=value_units)
        overall, *groups = cmp.groups
        out[2 * j][None], out[2 * j + 1][None] = overall.current, overall.previous
        for g in groups:
            out[2 * j][g.name], out[2 * j + 1][g.name] = g.current, g.previous
    return out


async def evaluate(store: Store, rules: Iterable[AlertRule], now: float, *,
                   value_units: dict[str, str] | None = None) -> list[Evaluation]:
    """Every rule's state per series at ``now``. ``value_units`` maps a feature to its
    value unit's outcome name (for ``cost_per_value_unit_usd``)."""
    rules = list(rules)
    drift_rules = [r for r in rules if r.measure in DRIFT_MEASURES]
    state_rules = [r for r in rules if r.measure in STATE_MEASURES]
    rules = [r for r in rules if r.measure not in DRIFT_MEASURES | STATE_MEASURES]
    wanted: dict[_ReadKey, set[int]] = defaultdict(set)
    for rule in rules:
        if not (rule.kind == "divergence" and rule.scope.within):
            wanted[_key(rule)] |= _indices(rule)
    read: dict[_ReadKey, _Windows] = {}
    for key, indices in wanted.items():
        read[key] = await _read(store, key, indices, window_end(key.window_s, now), value_units)
    out: list[Evaluation] = []
    for rule in rules:
        end = window_end(rule.window_s, now)
        span = (end - rule.window_s, end)
        if rule.kind == "divergence" and rule.scope.within:
            out += await _divergence_within(store, rule, span, value_units)
            continue
        windows = read[_key(rule)]
        if rule.scope.by is None:
            out.append(_judge(rule, windows, None, {}, span))
            continue
        names = {n for per in windows.values() for n in per if n is not None}
        for name in sorted(names):
            out.append(_judge(rule, windows, name, {rule.scope.by: name or NONE_LABEL}, span))
    if state_rules:
        out += await evaluate_state_rules(store, state_rules, now)
    if drift_rules:
        reports = await latest_reports(store, since=now - DRIFT_STALE_S, until=now)
        for rule in drift_rules:
            out += [_drift(rule, report) for feature, report in sorted(reports.items())
                    if rule.scope.feature in (None, feature)]
    return out


def _drift(rule: AlertRule, report: dict[str, Any]) -> Evaluation:
    """A drift rule's state for one feature, from the feature's latest drift report."""
    series = {"feature": report["feature"]}
    span = (report["current_since"], report["current_until"])
    n = min(int(report["n_reference"]), int(report["n_current"]))
    value = (report["auc"] if rule.measure == "drift_auc"
             else None if report["drifted"] is None else float(report["drifted"]))
    evidence = (f"{report['n_reference']} reference and {report['n_current']} current "
                "sampled traces")
    if value is None:
        return _no_data(rule, series, span, None, n,
                        f"the latest drift check had too little data for a verdict "
                        f"({evidence})")
    verdict = judge.threshold(rule, value)
    names = (report.get("report") or {}).get("drifted_names") or []
    found = f"drift in {', '.join(names)}" if report["drifted"] else "no drift found"
    said = [verdict.words] if rule.measure == "drift_auc" else (
        [] if report["auc"] is None else [f"classifier AUC {report['auc']:.3f}"])
    reason = f"{found}{f' ({said[0]})' if said else ''}, on {evidence}"
    return Evaluation(rule.name, series, verdict.state, value, verdict.compared_with, n,
                      reason, *span, score=verdict.score, level=verdict.level,
                      details={"drift_report": report["id"]})


def _no_data(rule: AlertRule, series: dict[str, str], span: tuple[float, float],
             value: float | None, n: int, why: str) -> Evaluation:
    return Evaluation(rule.name, series, _NO_DATA_STATE[rule.no_data], value, None, n,
                      f"{why} (no_data: {rule.no_data})", *span)


def _thin(rule: AlertRule, value: float | None, n: int, where: str) -> str | None:
    """Why a window's value cannot be judged, or None when it can."""
    m = rule.measure
    if n == 0 and (value is None or rule.min_sample > 0):
        return f"no {sample_words(m, 0).removeprefix('0 ')} {where}"
    if n < rule.min_sample:
        return f"only {sample_words(m, n)} {where}, fewer than min_sample {rule.min_sample}"
    if value is None:
        return f"{label(m)} cannot be told {where}"
    return None


def _baseline_words(rule: AlertRule) -> str:
    k = rule.windows_back
    if k == 1:
        return _BEFORE.get(rule.window_s, f"the {rule.window} before")
    if rule.window_s * k == 86400:
        return f"the same {rule.window} the day before"
    if rule.window_s * k == 7 * 86400:
        return f"the same {rule.window} the week before"
    return f"{k} windows of {rule.window} back"


def _judge(rule: AlertRule, windows: _Windows, name: str | None, series: dict[str, str],
           span: tuple[float, float]) -> Evaluation:
    m = rule.measure
    current = windows[0].get(name, _BLANK)
    value, n = value_of(m, current), sample_of(m, current)
    why = _thin(rule, value, n, f"in the last {rule.window}")
    if why is not None or value is None:
        return _no_data(rule, series, span, value, n, why or "")
    details: dict[str, Any] = {}
    if rule.kind == "threshold":
        verdict = judge.threshold(rule, value)
    elif rule.kind == "change":
        base = windows[rule.windows_back].get(name, _BLANK)
        bv, bn = value_of(m, base), sample_of(m, base)
        details["baseline_n"] = bn
        why = _thin(rule, bv, bn, f"in the baseline window ({_baseline_words(rule)})")
        if why is not None or bv is None:
            return _no_data(rule, series, span, value, n, why or "")
        verdict = judge.change(rule, value, bv, _baseline_words(rule))
    elif rule.kind == "anomaly":
        history = []
        for i in range(1, rule.history + 1):
            past = windows[i].get(name, _BLANK)
            pv = value_of(m, past)
            if pv is not None and sample_of(m, past) >= rule.min_sample:
                history.append(pv)
        details["history"] = history
        if len(history) < 3:
            return _no_data(rule, series, span, value, n,
                            f"only {len(history)} of the {rule.history} windows before have "
                            "enough data for a history (3 needed)")
        verdict = judge.anomaly(rule, value, history)
    else:  # divergence against the whole scope
        peer = windows[0].get(None, _BLANK)
        pv = value_of(m, peer)
        if pv is None:
            return _no_data(rule, series, span, value, n, "no value for the whole scope")
        by = rule.scope.by or "feature"
        verdict = judge.divergence(rule, value, pv, f"across all {_PEERS[by]}")
    state, held = verdict.state, []
    if state.breaching and rule.when:
        before = windows[_condition_index(rule)].get(name, _BLANK)
        for c in rule.when:
            ok, said = judge.condition_holds(c, value_of(c.measure, before),
                                             value_of(c.measure, current))
            if not ok:
                held.append(said)
        if held:
            state = State.OK
    reason = f"{verdict.words}, on {sample_words(m, n)}"
    if held:
        reason += f"; held back by the rule's when: conditions: {'; '.join(held)}"
    return Evaluation(rule.name, series, state, value, verdict.compared_with, n,
                      reason, *span, score=verdict.score,
                      level=verdict.level, details=details)


async def _divergence_within(store: Store, rule: AlertRule, span: tuple[float, float],
                             value_units: dict[str, str] | None) -> list[Evaluation]:
    s = rule.scope
    assert s.by is not None and s.within is not None  # checked on validation
    filters = Filters(feature=s.feature, team=s.team, model=s.model)
    pairs = await summary(store, span[0], span[1], filters=filters, group_by=(s.within, s.by),
                          value_units=value_units)
    groups = await summary(store, span[0], span[1], filters=filters, group_by=(s.within,),
                           value_units=value_units)
    peers = {g[s.within]: g for g in groups["groups"]}
    out = []
    m = rule.measure
    for g in pairs["groups"]:
        series: dict[str, str] = {s.within: g[s.within] or NONE_LABEL,
                                  s.by: g[s.by] or NONE_LABEL}
        value, n = value_of(m, g), sample_of(m, g)
        why = _thin(rule, value, n, f"in the last {rule.window}")
        if why is not None or value is None:
            out.append(_no_data(rule, series, span, value, n, why or ""))
            continue
        peer = peers.get(g[s.within])
        pv = value_of(m, peer) if peer else None
        if pv is None:
            out.append(_no_data(rule, series, span, value, n, f"no value for the {s.within}"))
            continue
        verdict = judge.divergence(rule, value, pv, f"for {s.within} {series[s.within]} "
                                                    f"as a whole")
        out.append(Evaluation(rule.name, series, verdict.state, value, verdict.compared_with, n,
                              f"{verdict.words}, on {sample_words(m, n)}", *span,
                              score=verdict.score, level=verdict.level,
                              details={"peer_n": sample_of(m, peer) if peer else 0}))
    return out
