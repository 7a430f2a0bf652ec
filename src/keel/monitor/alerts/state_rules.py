"""Rules over measures read as they are at the evaluation, not over the rollups:

- ``review_backlog`` (answers waiting for a reviewer) and ``review_age_s`` (how long the
  oldest has waited), overall or per feature or team (``scope.by``), from the review queue;
  an empty queue is a value (0), not missing data;
- ``eval_pass_rate``: each suite's latest run that finished in the rule's window (one series
  per suite); no run in the window is no data.

Threshold rules only (checked on validation): a queue has no history of windows to compare.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from keel.config.alerts import AlertRule
from keel.monitor.alerts import judge
from keel.monitor.alerts.model import Evaluation, State
from keel.monitor.alerts.values import fmt
from keel.store import Store
from keel.store.alert_reads import latest_eval_runs, pending_reviews

__all__ = ["evaluate_state_rules"]

_NONE = "(none)"
_NO_DATA = {"ok": State.OK, "no_data": State.NO_DATA, "alert": State.ALERT}


def _review_series(rule: AlertRule,
                   queue: list[dict[str, Any]]) -> dict[str, tuple[int, float | None]]:
    s = rule.scope
    out: dict[str, list[Any]] = defaultdict(lambda: [0, None])
    if s.by is None:
        out[""] = [0, None]  # one series, present even when nothing waits
    for row in queue:
        if (s.feature is not None and row["feature"] != s.feature) or \
                (s.team is not None and row["team"] != s.team):
            continue
        name = "" if s.by is None else (row[s.by] or _NONE)
        acc = out[name]
        acc[0] += row["n"]
        acc[1] = row["oldest"] if acc[1] is None else min(acc[1], row["oldest"])
    return {k: (v[0], v[1]) for k, v in out.items()}


def _reviews(rule: AlertRule, queue: list[dict[str, Any]], now: float) -> list[Evaluation]:
    out = []
    for name, (n, oldest) in sorted(_review_series(rule, queue).items()):
        series = {rule.scope.by: name} if rule.scope.by else {}
        age = 0.0 if oldest is None else max(now - oldest, 0.0)
        value = float(n) if rule.measure == "review_backlog" else age
        verdict = judge.threshold(rule, value)
        waiting = (f"{n} answer{'s' if n != 1 else ''} waiting for review"
                   + (f", the oldest for {fmt('review_age_s', age)}" if n else ""))
        out.append(Evaluation(rule.name, series, verdict.state, value, verdict.compared_with,
                              n, f"{verdict.words}: {waiting}", now, now,
                              score=verdict.score, level=verdict.level))
    return out


def _evals(rule: AlertRule, runs: dict[str, dict[str, Any]], now: float) -> list[Evaluation]:
    out = []
    for suite, run in sorted(runs.items()):
        series = {"suite": suite}
        judged = int(run["passed"]) + int(run["failed"])
        if judged == 0:
            out.append(Evaluation(rule.name, series, _NO_DATA[rule.no_data], None, None, 0,
                                  f"the latest run {run['id']} judged no case (no_data: "
                                  f"{rule.no_data})", now - rule.window_s, now))
            continue
        value = int(run["passed"]) / judged
        verdict = judge.threshold(rule, value)
        out.append(Evaluation(rule.name, series, verdict.state, value, verdict.compared_with,
                              judged, f"{verdict.words}, in run {run['id']} ({judged} judged "
                              f"executions)", now - rule.window_s, now,
                              score=verdict.score, level=verdict.level,
                              details={"run": run["id"]}))
    return out


async def evaluate_state_rules(store: Store, rules: list[AlertRule],
                               now: float) -> list[Evaluation]:
    out: list[Evaluation] = []
    queue: list[dict[str, Any]] | None = None
    for rule in rules:
        if rule.measure == "eval_pass_rate":
            runs = await latest_eval_runs(store, now - rule.window_s, now)
            out += _evals(rule, runs, now)
        else:
            if queue is None:
                queue = await pending_reviews(store)
            out += _reviews(rule, queue, now)
    return out
