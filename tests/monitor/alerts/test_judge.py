"""The decision of each kind, from numbers alone: levels at or beyond breach, direction turns
them, changes from zero are infinite, z scores are robust to one outlier in the history,
and a flat history does not make a small wobble an anomaly."""

from __future__ import annotations

import math
from typing import Any

import pytest

from keel.config import AlertCondition, AlertRule
from keel.monitor.alerts import State, judge


def rule(**kw: Any) -> AlertRule:
    return AlertRule.model_validate({"name": "r", "measure": "error_rate", **kw})


@pytest.mark.parametrize(("value", "state"), [
    (0.01, State.OK), (0.05, State.WARNING), (0.07, State.WARNING), (0.1, State.ALERT),
    (0.5, State.ALERT)])
def test_threshold_above(value: float, state: State) -> None:
    v = judge.threshold(rule(warning=0.05, critical=0.1), value)
    assert v.state == state
    assert v.level == (0.1 if state is State.ALERT else 0.05)


@pytest.mark.parametrize(("value", "state"), [
    (0.999, State.OK), (0.99, State.WARNING), (0.97, State.ALERT)])
def test_threshold_below(value: float, state: State) -> None:
    r = rule(measure="availability", direction="below", warning=0.99, critical=0.98)
    assert judge.threshold(r, value).state == state


def test_threshold_says_the_level_crossed() -> None:
    v = judge.threshold(rule(warning=0.05, critical=0.1), 0.12)
    assert v.words == "error rate 12% is above the critical level 10%"
    assert judge.threshold(rule(critical=0.1), 0.02).words == \
        "error rate 2% is within the level 10%"


def test_change_is_relative_and_direction_turns_it() -> None:
    up = rule(kind="change", warning=0.5, critical=1.0)
    assert judge.change(up, 0.31, 0.12, "the day before").state is State.ALERT
    assert judge.change(up, 0.19, 0.12, "the day before").state is State.WARNING
    assert judge.change(up, 0.02, 0.12, "the day before").state is State.OK
    down = rule(kind="change", direction="below", warning=0.5)
    assert judge.change(down, 0.05, 0.12, "x").state is State.WARNING
    assert judge.change(down, 0.3, 0.12, "x").state is State.OK
    v = judge.change(rule(measure="rework_rate", kind="change", warning=0.5), 0.31, 0.12,
                     "the day before")
    assert v.words == "rework rate 31% against 12% the day before (+158%)"
    assert v.compared_with == 0.12 and v.score == pytest.approx(0.19 / 0.12)


def test_change_from_zero_is_infinite_and_zero_to_zero_is_none() -> None:
    assert judge.relative_change(0, 0) == 0
    assert judge.relative_change(0, 3) == math.inf
    v = judge.change(rule(kind="change", critical=2.0), 0.1, 0.0, "the hour before")
    assert v.state is State.ALERT and "up from zero" in v.words


def test_anomaly_against_a_robust_centre() -> None:
    history = [100.0, 104, 98, 101, 99, 103, 97, 102, 100, 5000]  # one outlier
    r = rule(measure="latency_p95_ms", kind="anomaly", warning=3, critical=6)
    assert judge.anomaly(r, 101, history).state is State.OK
    assert judge.anomaly(r, 112, history).state is State.WARNING
    assert judge.anomaly(r, 140, history).state is State.ALERT
    # the mean and standard deviation are dragged by the outlier: the same rise is hidden
    plain = rule(measure="latency_p95_ms", kind="anomaly", warning=3, method="stddev")
    assert judge.anomaly(plain, 140, history).state is State.OK
    z, centre = judge.robust_z(140, history, "mad")
    assert centre == 100.5 and z > 6


def test_a_flat_history_needs_a_real_move() -> None:
    r = rule(measure="latency_p95_ms", kind="anomaly", warning=3)
    assert judge.anomaly(r, 101, [100.0] * 8).state is State.OK  # spread >= 1% of centre
    assert judge.anomaly(r, 110, [100.0] * 8).state is State.WARNING
    zero = rule(kind="anomaly", warning=3)
    assert judge.anomaly(zero, 0.0, [0.0] * 5).state is State.OK
    assert judge.anomaly(zero, 0.01, [0.0] * 5).state is State.WARNING


def test_divergence_below_the_peers() -> None:
    r = rule(measure="acceptance_rate", kind="divergence", direction="below", warning=0.25,
             critical=0.5, scope={"by": "team", "within": "feature"})
    assert judge.divergence(r, 0.7, 0.78, "for feature support").state is State.OK
    assert judge.divergence(r, 0.5, 0.78, "for feature support").state is State.WARNING
    v = judge.divergence(r, 0.3, 0.78, "for feature support as a whole")
    assert v.state is State.ALERT
    assert v.words == "acceptance rate 30% against 78% for feature support as a whole (-62%)"


def test_conditions_bound_another_measures_change() -> None:
    stable = AlertCondition(measure="requests", max_abs_change=0.15)
    assert judge.condition_holds(stable, 100, 110) == (True, "requests +10% (100 to 110)")
    assert judge.condition_holds(stable, 100, 130)[0] is False
    assert judge.condition_holds(stable, 100, 80)[0] is False
    not_up = AlertCondition(measure="acceptance_rate", max_change=0.0, unknown="met")
    assert judge.condition_holds(not_up, 0.8, 0.8)[0] is True
    assert judge.condition_holds(not_up, 0.8, 0.9)[0] is False
    assert judge.condition_holds(not_up, None, 0.9) == (True, "acceptance rate change unknown")
    assert judge.condition_holds(stable, None, 100)[0] is False
    at_least = AlertCondition(measure="requests", min_change=0.5)
    assert judge.condition_holds(at_least, 100, 160)[0] is True
    assert judge.condition_holds(at_least, 100, 120)[0] is False
