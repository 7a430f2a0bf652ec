"""The alerts: section is validated like the rest of the config: every problem at once,
each with its key and a fix, and a misspelt measure gets the closest one."""

from __future__ import annotations

from typing import Any

import pytest

from keel.config import AlertsConfig, parse_config
from keel.config.alerts import MEASURES, window_seconds
from keel.errors import ConfigError
from keel.monitor.alerts import BUILTINS, rules_for


def problems(alerts: Any) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config({"alerts": alerts}, "keel.yaml")
    return str(exc.value).splitlines()


def test_a_valid_section_parses_with_its_defaults() -> None:
    c = parse_config({"alerts": {"rules": [
        {"name": "errors", "measure": "error_rate", "warning": 0.05, "critical": 0.1,
         "scope": {"feature": "support", "by": "model"}, "window": "1h", "for": 3},
        {"name": "slow", "measure": "latency_p95_ms", "kind": "anomaly", "warning": 3,
         "history": 24, "method": "stddev"},
        {"name": "low acceptance", "measure": "acceptance_rate", "direction": "below",
         "warning": 0.7, "critical": 0.5, "min_sample": 20, "no_data": "ok"}]}}, "keel.yaml")
    errors, slow, low = c.alerts.rules
    assert c.alerts.builtins is True
    assert (errors.for_, errors.keep_firing_for, errors.window_s) == (3, 1, 3600)
    assert errors.no_data == "no_data" and errors.kind == "threshold"
    assert (slow.history, slow.method) == (24, "stddev")
    assert (low.direction, low.min_sample) == (("below"), 20)
    assert parse_config({}, "keel.yaml").alerts == AlertsConfig()


def test_every_problem_is_reported_at_once_with_its_key_and_fix() -> None:
    lines = problems({"rules": [
        {"name": "a", "measure": "rework_rte", "window": "90s", "kind": "change",
         "warning": -1, "scope": {"within": "team"}},
        {"name": "b", "measure": "requests", "critical": 3, "when": [{"measure": "volume"}]},
        {"name": "c", "measure": "error_rate"},
        {"name": "d", "measure": "error_rate", "warning": 0.1, "critical": 0.05},
        {"name": "e", "measure": "error_rate", "warning": 0.1, "scope": {"team": "x",
                                                                        "by": "team"}},
        {"name": "f", "measure": "error_rate", "warning": 0.1, "kind": "divergence"},
        {"name": "g", "measure": "error_rate", "warning": 0.1, "no_data": "no-data",
         "windows_bak": 1}]})
    assert lines == [
        "keel.yaml: alerts.rules[0].measure: unknown measure 'rework_rte'; "
        "did you mean 'rework_rate'?",
        "keel.yaml: alerts.rules[0].window: '90s' is not a window the rollups keep whole; "
        "use whole minutes up to 2h, whole hours up to 48h or whole days, e.g. 1h, 24h",
        "keel.yaml: alerts.rules[0].warning: a change level must be above 0 (got -1.0); "
        "give the size of the move, e.g. 0.5 for 50% (3 for z=3 in anomaly); "
        "direction: says which way",
        "keel.yaml: alerts.rules[0].scope.within: within: is for kind: divergence; "
        "remove it, or set kind: divergence",
        "keel.yaml: alerts.rules[1].when[0].measure: unknown measure 'volume'; use one of "
        + ", ".join(MEASURES),
        "keel.yaml: alerts.rules[1].when[0].max_change: the condition sets no bound; "
        "set max_change, min_change or max_abs_change",
        "keel.yaml: alerts.rules[2].warning: the rule has no level; "
        "set warning:, critical: or both",
        "keel.yaml: alerts.rules[3].critical: critical (0.05) is less severe than warning "
        "(0.1); swap them, or set direction: to the side the measure goes wrong",
        "keel.yaml: alerts.rules[4].scope.team: scope filters team and evaluates by team; "
        "remove team: (one series) or by: (every team)",
        "keel.yaml: alerts.rules[5].scope.by: divergence needs series to compare; "
        "set by: feature, team or model",
        "keel.yaml: alerts.rules[6].no_data: Input should be 'ok', 'no_data' or 'alert' "
        "(got 'no-data'); did you mean 'no_data'?",
        "keel.yaml: alerts.rules[6].windows_bak: unknown key 'windows_bak'; "
        "did you mean 'windows_back'?",
    ]


def test_rule_names_are_unique_and_levels_point_the_right_way_below() -> None:
    assert problems({"rules": [
        {"name": "x", "measure": "availability", "direction": "below", "warning": 0.99,
         "critical": 0.999},
        {"name": "x", "measure": "requests", "warning": 10}]}) == [
        "keel.yaml: alerts.rules[0].critical: critical (0.999) is less severe than warning "
        "(0.99); swap them, or set direction: to the side the measure goes wrong"]
    assert problems({"rules": [{"name": "x", "measure": "requests", "warning": 10},
                               {"name": "x", "measure": "requests", "warning": 20}]}) == [
        "keel.yaml: alerts.rules[1].name: rule 'x' is declared twice; "
        "give each rule a unique name"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", 1800), ("120m", 7200), ("1h", 3600), ("24h", 86400), ("48h", 172800),
    ("7d", 604800), ("3d", 259200), ("90s", None), ("1.5h", None), ("0h", None),
    ("72h", 259200), ("60h", None), ("150m", None), ("1w", None), ("", None), ("h", None)])
def test_windows_are_whole_rollup_buckets(text: str, seconds: int | None) -> None:
    assert window_seconds(text) == seconds


def test_builtins_apply_by_default_and_a_config_rule_replaces_one_by_name() -> None:
    assert rules_for(AlertsConfig()) == list(BUILTINS)
    assert rules_for(AlertsConfig(builtins=False)) == []
    own = AlertsConfig.model_validate({"rules": [
        {"name": "keel.rework-surge", "measure": "rework_rate", "kind": "change",
         "window": "7d", "warning": 0.3}, {"name": "mine", "measure": "requests",
                                           "warning": 5}]})
    rules = rules_for(own)
    assert [r.name for r in rules] == [r.name for r in BUILTINS[1:]] + [
        "keel.rework-surge", "mine"]
    assert rules[-2].window == "7d"
    assert all(r.description for r in BUILTINS)
