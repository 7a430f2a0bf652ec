"""Deciding a rule's state from numbers already read: pure functions, no store.

Each kind gives a score the levels are held against (at or beyond a level breaches):
``threshold`` the value itself; ``change`` the relative change against the baseline window
(from zero to anything is an infinite change); ``anomaly`` a z against the series' history
(median and MAD scaled by 1.4826, or mean and standard deviation; the spread is at least 1%
of the centre, so a flat history does not make every wobble infinite); ``divergence`` the
relative gap to the peer value. ``direction: below`` turns each the other way.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from keel.config.alerts import AlertCondition, AlertRule
from keel.monitor.alerts.model import State
from keel.monitor.alerts.values import fmt, label, pct_change

INF = float("inf")


@dataclass(frozen=True, slots=True)
class Verdict:
    state: State
    score: float | None
    level: float | None
    compared_with: float | None
    words: str  # the comparison in plain words (the caller adds the evidence)


def relative_change(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else math.copysign(INF, after)
    return (after - before) / abs(before)


def severity(rule: AlertRule, score: float) -> tuple[State, float | None]:
    """The state a score reaches, and the level it was held against (the one crossed, or
    the nearest one not crossed). A threshold's levels are values (``below``: at or under
    them breaches); the other kinds' levels are sizes of a move (``below``: a move down)."""
    def crosses(level: float | None) -> bool:
        if level is None:
            return False
        if rule.kind == "threshold":
            return score >= level if rule.direction == "above" else score <= level
        return (score if rule.direction == "above" else -score) >= level

    if crosses(rule.critical):
        return State.ALERT, rule.critical
    if crosses(rule.warning):
        return State.WARNING, rule.warning
    return State.OK, rule.warning if rule.warning is not None else rule.critical


def _crossed(state: State) -> str:
    return {State.ALERT: "critical", State.WARNING: "warning"}.get(state, "")


def threshold(rule: AlertRule, value: float) -> Verdict:
    state, level = severity(rule, value)
    side = "above" if rule.direction == "above" else "below"
    m = rule.measure
    if state.breaching:
        words = f"{label(m)} {fmt(m, value)} is {side} the {_crossed(state)} level {fmt(m, level)}"
    else:
        words = f"{label(m)} {fmt(m, value)} is within the level {fmt(m, level)}"
    return Verdict(state, value, level, level, words)


def change(rule: AlertRule, value: float, baseline: float, baseline_words: str) -> Verdict:
    score = relative_change(baseline, value)
    state, level = severity(rule, score)
    m = rule.measure
    words = (f"{label(m)} {fmt(m, value)} against {fmt(m, baseline)} {baseline_words} "
             f"({pct_change(score)})")
    return Verdict(state, score, level, baseline, words)


def robust_z(value: float, history: list[float], method: str) -> tuple[float, float]:
    """(z, centre) of ``value`` against ``history``."""
    if method == "mad":
        centre = statistics.median(history)
        spread = 1.4826 * statistics.median([abs(x - centre) for x in history])
    else:
        centre = statistics.fmean(history)
        spread = statistics.pstdev(history)
    spread = max(spread, 0.01 * abs(centre))
    if spread == 0:
        return (0.0 if value == centre else math.copysign(INF, value - centre)), centre
    return (value - centre) / spread, centre


def anomaly(rule: AlertRule, value: float, history: list[float]) -> Verdict:
    z, centre = robust_z(value, history, rule.method)
    state, level = severity(rule, z)
    m = rule.measure
    centre_name = "median" if rule.method == "mad" else "mean"
    z_words = "z beyond any spread" if math.isinf(z) else f"z {z:+.1f}"
    words = (f"{label(m)} {fmt(m, value)} against a {centre_name} of {fmt(m, centre)} over "
             f"the {len(history)} windows of {rule.window} before ({z_words})")
    return Verdict(state, z, level, centre, words)


def divergence(rule: AlertRule, value: float, peer: float, peer_words: str) -> Verdict:
    score = relative_change(peer, value)
    state, level = severity(rule, score)
    m = rule.measure
    words = f"{label(m)} {fmt(m, value)} against {fmt(m, peer)} {peer_words} ({pct_change(score)})"
    return Verdict(state, score, level, peer, words)


def condition_holds(c: AlertCondition, before: float | None,
                    after: float | None) -> tuple[bool, str]:
    """Whether another measure moved as the condition allows, and what it did."""
    if before is None or after is None:
        return c.unknown == "met", f"{label(c.measure)} change unknown"
    ch = relative_change(before, after)
    ok = ((c.max_change is None or ch <= c.max_change)
          and (c.min_change is None or ch >= c.min_change)
          and (c.max_abs_change is None or abs(ch) <= c.max_abs_change))
    return ok, f"{label(c.measure)} {pct_change(ch)} ({fmt(c.measure, before)} to " \
               f"{fmt(c.measure, after)})"
