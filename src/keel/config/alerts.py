"""The alerts: section: rules over keel's measures, and whether the built-in early warnings
apply.

A rule names a measure (``MEASURES``), a scope (feature / team / model filters, and ``by``
to evaluate one series per feature, team or model), a window (``30m``, ``1h``, ``24h``,
``7d``: whole minutes up to 2 hours, whole hours up to 2 days, whole days beyond, the
buckets the rollups keep) and a kind:

- ``threshold``: the value against fixed ``warning`` / ``critical`` levels;
- ``change``: the relative change against a baseline window, the one before
  (``windows_back: 1``) or N windows back (``windows_back: 24`` with ``window: 1h`` is the
  same hour yesterday); ``warning: 0.5`` is +50% (or -50% with ``direction: below``);
- ``anomaly``: the value against the series' own last ``history`` windows, as a robust z
  (median and MAD, ``method: mad``) or a plain one (mean and standard deviation,
  ``method: stddev``); ``warning: 3`` is z above 3;
- ``divergence``: each series of ``by`` against the whole scope (or against its ``within``
  group: ``by: team, within: feature`` puts each team against its feature); ``warning: 0.2``
  is 20% away from it.

``min_sample`` is the least evidence that counts: requests, or judged answers (feedback with
an outcome) for the quality rates; below it the series has no data, and ``no_data`` says what
that means: ``ok``, ``no_data`` (its own state) or ``alert``. ``when:`` conditions hold a
change or anomaly back unless other measures moved as stated (volume stable, acceptance not
up). ``for`` and ``keep_firing_for`` count evaluations: a rule fires after ``for``
consecutive breaching ones and resolves after ``keep_firing_for`` clear ones.

Besides the rollups' measures, some are read as they are at each evaluation (threshold rules
only): ``review_backlog`` and ``review_age_s`` (the review queue, by feature or team),
``eval_pass_rate`` (each suite's latest run finished in the window), and ``drift`` /
``drift_auc`` (each feature's latest drift check).
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from keel.config.base import _KeyProblem, _KeyProblems, _Strict

# measure -> what it is, as a reason says it
MEASURES: dict[str, str] = {
    "error_rate": "error rate",
    "availability": "availability",
    "latency_p95_ms": "p95 latency",
    "spend_usd": "spend",
    "cost_per_request_usd": "cost per request",
    "cost_per_value_unit_usd": "cost per value unit",
    "acceptance_rate": "acceptance rate",
    "rework_rate": "rework rate",
    "escalation_rate": "escalation rate",
    "critical_errors_per_1k": "critical errors per 1k requests",
    "guard_blocked": "guardrail blocks",
    "fallbacks": "fallbacks",
    "requests": "requests",
    # from the latest scheduled drift check of each feature (the drift: section), not the
    # rollups: 1 when it found drift, 0 when not; the domain classifier's ROC AUC
    "drift": "drift",
    "drift_auc": "drift classifier AUC",
    "review_backlog": "answers waiting for review",
    "review_age_s": "the oldest held answer's wait",
    "eval_pass_rate": "eval pass rate",
}
DRIFT_MEASURES = frozenset({"drift", "drift_auc"})
# read as they are at the evaluation, not over the rollups: the review queue now (by feature
# or team), and each eval suite's latest run finished in the window (one series per suite)
STATE_MEASURES = frozenset({"review_backlog", "review_age_s", "eval_pass_rate"})
# measures whose evidence is judged answers (feedback with an outcome), not requests
QUALITY_MEASURES = frozenset({"acceptance_rate", "rework_rate", "escalation_rate"})
SERIES = ("feature", "team", "model")
_WINDOW = re.compile(r"([1-9][0-9]*)([mhd])", re.ASCII)
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def window_seconds(text: str) -> int | None:
    """``30m``, ``1h``, ``24h``, ``7d`` in seconds; None when it is not a window the rollups
    can give whole (minutes up to 2 hours, hours up to 2 days, days beyond)."""
    m = _WINDOW.fullmatch(text)
    if m is None:
        return None
    seconds = int(m[1]) * _UNIT_S[m[2]]
    bucket = 60 if seconds <= 2 * 3600 else 3600 if seconds <= 2 * 86400 else 86400
    return seconds if seconds % bucket == 0 else None


def _unknown_measure(key: str, name: str) -> _KeyProblem:
    close = difflib.get_close_matches(name, list(MEASURES), n=1, cutoff=0.6)
    fix = (f"did you mean '{close[0]}'?" if close
           else f"use one of {', '.join(MEASURES)}")
    return _KeyProblem(key, f"unknown measure '{name}'", fix)


class AlertScope(_Strict):
    feature: str | None = None
    team: str | None = None
    model: str | None = None
    by: Literal["feature", "team", "model"] | None = Field(
        None, description="Evaluate one series per feature, team or model.")
    within: Literal["feature", "team", "model"] | None = Field(
        None, description="divergence only: each series against its group of this kind.")


class AlertCondition(_Strict):
    """Another measure's change over the same windows, which must hold for the rule to
    breach (``max_abs_change: 0.15`` on requests: volume moved less than 15%)."""

    measure: str
    max_change: float | None = None
    min_change: float | None = None
    max_abs_change: float | None = Field(None, ge=0)
    unknown: Literal["met", "unmet"] = Field(
        "unmet", description="When the change cannot be told (no data either side).")

    @model_validator(mode="after")
    def _check(self) -> AlertCondition:
        problems: list[_KeyProblem] = []
        if self.measure not in MEASURES:
            problems.append(_unknown_measure("measure", self.measure))
        if self.max_change is None and self.min_change is None and self.max_abs_change is None:
            problems.append(_KeyProblem("max_change", "the condition sets no bound",
                                        "set max_change, min_change or max_abs_change"))
        if problems:
            raise _KeyProblems(problems)
        return self


class AlertRule(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    measure: str
    kind: Literal["threshold", "change", "anomaly", "divergence"] = "threshold"
    scope: AlertScope = Field(default_factory=AlertScope)
    window: str = "1h"
    direction: Literal["above", "below"] = "above"
    warning: float | None = None
    critical: float | None = None
    windows_back: int = Field(1, ge=1, le=1000, description="change: the baseline window.")
    history: int = Field(12, ge=3, le=200, description="anomaly: windows of history.")
    method: Literal["mad", "stddev"] = "mad"
    min_sample: int = Field(0, ge=0)
    no_data: Literal["ok", "no_data", "alert"] = "no_data"
    when: list[AlertCondition] = Field(default_factory=list)
    for_: int = Field(1, ge=1, alias="for")
    keep_firing_for: int = Field(1, ge=1)

    @property
    def window_s(self) -> int:
        s = window_seconds(self.window)
        assert s is not None  # checked on validation
        return s

    @model_validator(mode="after")
    def _check(self) -> AlertRule:
        problems: list[_KeyProblem] = []
        if self.measure not in MEASURES:
            problems.append(_unknown_measure("measure", self.measure))
        if window_seconds(self.window) is None:
            problems.append(_KeyProblem(
                "window", f"'{self.window}' is not a window the rollups keep whole",
                "use whole minutes up to 2h, whole hours up to 48h or whole days, e.g. 1h, 24h"))
        if self.warning is None and self.critical is None:
            problems.append(_KeyProblem("warning", "the rule has no level",
                                        "set warning:, critical: or both"))
        if self.warning is not None and self.critical is not None:
            wrong = (self.critical < self.warning if self.direction == "above"
                     or self.kind != "threshold" else self.critical > self.warning)
            if wrong:
                problems.append(_KeyProblem(
                    "critical", f"critical ({self.critical}) is less severe than warning "
                                f"({self.warning})",
                    "swap them, or set direction: to the side the measure goes wrong"))
        if self.kind != "threshold":
            for key in ("warning", "critical"):
                v = getattr(self, key)
                if v is not None and v <= 0:
                    problems.append(_KeyProblem(
                        key, f"a {self.kind} level must be above 0 (got {v})",
                        "give the size of the move, e.g. 0.5 for 50% (3 for z=3 in anomaly); "
                        "direction: says which way"))
        s = self.scope
        if self.measure in DRIFT_MEASURES:
            if self.kind != "threshold":
                problems.append(_KeyProblem(
                    "kind", f"{self.measure} is read from the latest drift check, which has no "
                            "history of windows to compare", "use kind: threshold"))
            if s.team is not None or s.model is not None or s.by not in (None, "feature"):
                problems.append(_KeyProblem(
                    "scope", "drift is checked per feature", "scope it by feature only"))
        if self.measure in STATE_MEASURES:
            if self.kind != "threshold":
                problems.append(_KeyProblem(
                    "kind", f"{self.measure} is read as it is at each evaluation",
                    "use kind: threshold"))
            if self.measure == "eval_pass_rate" and (s.feature or s.team or s.model or s.by):
                problems.append(_KeyProblem(
                    "scope", "eval_pass_rate has one series per eval suite",
                    "remove scope: (the window says how recent a run must be)"))
            elif s.model is not None or s.by == "model":
                problems.append(_KeyProblem(
                    "scope", "reviews are kept per feature and team, not per model",
                    "scope by feature or team"))
        if s.within is not None and self.kind != "divergence":
            problems.append(_KeyProblem("scope.within", "within: is for kind: divergence",
                                        "remove it, or set kind: divergence"))
        if self.kind == "divergence":
            if s.by is None:
                problems.append(_KeyProblem("scope.by", "divergence needs series to compare",
                                            "set by: feature, team or model"))
            elif s.within == s.by:
                problems.append(_KeyProblem("scope.within", "within: is the same as by:",
                                            "name another kind, e.g. by: team, within: feature"))
        for name in ("feature", "team", "model"):
            if getattr(s, name) is not None and name == s.by:
                problems.append(_KeyProblem(
                    f"scope.{name}", f"scope filters {name} and evaluates by {name}",
                    f"remove {name}: (one series) or by: (every {name})"))
        if problems:
            raise _KeyProblems(problems)
        return self


_DURATION = re.compile(r"([1-9][0-9]*)([smhd])", re.ASCII)
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int | None:
    """``30s``, ``5m``, ``4h``, ``2d`` in seconds; None when it is not one."""
    m = _DURATION.fullmatch(text)
    return None if m is None else int(m[1]) * _DURATION_S[m[2]]


def _check_durations(items: tuple[tuple[str, str, int], ...]) -> None:
    """Raise every (key, text, least seconds) whose text is not a duration of at least that."""
    problems: list[_KeyProblem] = []
    for key, text, least in items:
        seconds = duration_seconds(text)
        if seconds is None:
            problems.append(_KeyProblem(key, f"'{text}' is not a duration",
                                        "write a whole number and a unit: 30s, 5m, 4h, 1d"))
        elif seconds < least:
            problems.append(_KeyProblem(key, f"'{text}' is shorter than {least}s",
                                        f"use at least {least}s"))
    if problems:
        raise _KeyProblems(problems)


class AlertMatch(_Strict):
    """Which alerts an inhibition's source or target is: every key given must hold (a list
    is any of its values); an empty match is every alert."""

    rule: list[str] = Field(default_factory=list)
    measure: list[str] = Field(default_factory=list)
    severity: list[Literal["warning", "critical"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _measures(self) -> AlertMatch:
        problems = [_unknown_measure(f"measure[{i}]", m) for i, m in enumerate(self.measure)
                    if m not in MEASURES]
        if problems:
            raise _KeyProblems(problems)
        return self


class Inhibition(_Strict):
    """While an alert matching ``source`` fires, alerts matching ``target`` that have the
    same values for every label in ``equal`` are not notified (they stay visible, marked
    inhibited). A source without one of the ``equal`` labels (a rule over all features)
    inhibits every target."""

    source: AlertMatch
    target: AlertMatch
    equal: list[Literal["feature", "team", "model"]] = Field(
        default_factory=lambda: ["feature"])


class AlertsConfig(_Strict):
    builtins: bool = Field(
        True, description="Apply keel's built-in early-warning rules (keel.monitor.alerts."
                          "builtin_rules) next to these.")
    rules: list[AlertRule] = Field(default_factory=list)
    evaluate: bool = Field(
        True, description="keel serve evaluates the rules every interval (one replica per "
                          "tick) and notifies the receivers.")
    interval: str = Field("1m", description="How often keel serve evaluates: 30s, 1m, 5m.")
    receivers: list[str] | None = Field(
        None, description="The receivers notified (names in receivers:); default: all.")
    group_by: list[Literal["rule", "feature", "team", "model"]] = Field(
        default_factory=lambda: ["feature"],
        description="Alerts with the same values of these labels go out as one notification.")
    repeat_interval: str = Field(
        "4h", description="A group still firing is notified again after this long.")
    inhibit: list[Inhibition] = Field(default_factory=list)
    builtin_inhibitions: bool = Field(
        True, description="While availability or the error rate is in alert for a feature "
                          "(a provider outage), its quality, cost and latency alerts are "
                          "inhibited: they are the outage's effects, not news.")

    @property
    def interval_s(self) -> int:
        return duration_seconds(self.interval) or 60

    @property
    def repeat_interval_s(self) -> int:
        return duration_seconds(self.repeat_interval) or 4 * 3600

    @model_validator(mode="after")
    def _durations(self) -> AlertsConfig:
        _check_durations((("interval", self.interval, 10),
                          ("repeat_interval", self.repeat_interval, 60)))
        return self

    @model_validator(mode="after")
    def _names(self) -> AlertsConfig:
        problems: list[_KeyProblem] = []
        seen: set[str] = set()
        for i, r in enumerate(self.rules):
            if r.name in seen:
                problems.append(_KeyProblem(f"rules[{i}].name",
                                            f"rule '{r.name}' is declared twice",
                                            "give each rule a unique name"))
            seen.add(r.name)
        if problems:
            raise _KeyProblems(problems)
        return self


class DriftSchedule(_Strict):
    """The drift: section: ``keel serve`` checks each feature's drift every ``interval``
    (one replica per tick): the last ``current`` against the ``reference`` just before it,
    ``sample`` traces sampled from each. Reports are stored; the ``drift`` and
    ``drift_auc`` measures read the latest one."""

    evaluate: bool = Field(True, description="Check on a schedule in keel serve.")
    interval: str = Field("1h", description="How often: 30m, 1h, 6h.")
    features: list[str] | None = Field(
        None, description="The features checked; default: every feature in features:.")
    current: str = Field("24h", description="The current window, back from the check.")
    reference: str = Field("7d", description="The reference window, before the current one.")
    sample: int = Field(1000, ge=30, le=5000, description="Traces sampled from each window.")

    @property
    def interval_s(self) -> int:
        return duration_seconds(self.interval) or 3600

    @property
    def current_s(self) -> int:
        return duration_seconds(self.current) or 86400

    @property
    def reference_s(self) -> int:
        return duration_seconds(self.reference) or 7 * 86400

    @model_validator(mode="after")
    def _durations(self) -> DriftSchedule:
        _check_durations((("interval", self.interval, 300), ("current", self.current, 600),
                          ("reference", self.reference, 600)))
        return self
