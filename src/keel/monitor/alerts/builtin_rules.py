"""The built-in early-warning rules, as data: rules like any in the config, applied when
``alerts: {builtins: true}`` (the default). A rule of the config with a built-in's name
replaces it (to tune its levels or window); ``builtins: false`` drops them all.

Each evaluates per feature over the last 24 hours against the 24 hours before (``keel.drift``:
the feature's latest drift check), and says ``ok`` when there is too little to judge
(``no_data: ok``), so a quiet feature stays quiet.

Not here, and why: repeat incidents need incidents, which keel does not record yet;
escalation "from key users" needs per-user numbers, and the rollups keep none (feature, team,
model and prompt only), so escalation is watched per feature. The review backlog and the
eval pass rate are measures (``review_backlog``, ``review_age_s``, ``eval_pass_rate``) with
no built-in rule: their levels depend on each team's reviewers and suites.
"""

from __future__ import annotations

from keel.config.alerts import AlertCondition, AlertRule, AlertsConfig, AlertScope

__all__ = ["BUILTINS", "rules_for"]

_PER_FEATURE = AlertScope(by="feature")

REWORK_SURGE = AlertRule.model_validate({
    "name": "keel.rework-surge", "measure": "rework_rate", "kind": "change", "window": "24h",
    "scope": _PER_FEATURE, "warning": 0.5, "critical": 1.0, "min_sample": 30,
    "no_data": "ok", "keep_firing_for": 5,
    "when": [AlertCondition(measure="requests", max_abs_change=0.15)],
    "description": "More answers need editing at the same volume."})
"""Catches: a feature's rework rate (edited answers among judged ones) up by half or more
on the day before while its request volume moved less than 15%. At stable volume the users
did not change, the answers did: a prompt, model or retrieval change gone wrong. A rework
rise that comes with a volume swing (a launch, new users) is left to the other rules."""

UNIT_COST_CREEP = AlertRule.model_validate({
    "name": "keel.unit-cost-creep", "measure": "cost_per_request_usd", "kind": "change",
    "window": "24h", "scope": _PER_FEATURE, "warning": 0.2, "critical": 0.5,
    "min_sample": 100, "no_data": "ok", "keep_firing_for": 5,
    "when": [AlertCondition(measure="acceptance_rate", max_change=0.0, unknown="met")],
    "description": "Each request costs more and the answers are not better for it."})
"""Catches: cost per request up 20% or more on the day before while the acceptance rate did
not rise (or cannot be told: no feedback is no evidence of better answers). Longer prompts,
a pricier model or more retries that buy nothing."""

VALUE_UNIT_COST_CREEP = AlertRule.model_validate({
    "name": "keel.value-unit-cost-creep", "measure": "cost_per_value_unit_usd",
    "kind": "change", "window": "24h", "scope": _PER_FEATURE, "warning": 0.2,
    "critical": 0.5, "min_sample": 100, "no_data": "ok", "keep_firing_for": 5,
    "when": [AlertCondition(measure="acceptance_rate", max_change=0.0, unknown="met")],
    "description": "Each unit of business value costs more, and quality did not rise."})
"""Catches: cost per value unit (the feature's ``value_unit`` outcome) up 20% or more on
the day before while acceptance did not rise: the same spend resolving fewer tickets, or
more spend for the same. Features without a value unit have no value here and stay ok."""

ESCALATION_RISING = AlertRule.model_validate({
    "name": "keel.escalation-rising", "measure": "escalation_rate", "kind": "change",
    "window": "24h", "scope": _PER_FEATURE, "warning": 0.5, "critical": 1.0,
    "min_sample": 30, "no_data": "ok", "keep_firing_for": 5,
    "description": "Answers are handed to a person more often."})
"""Catches: a feature's escalation rate (escalated answers among judged ones) up by half or
more on the day before. Per feature, not per user: the rollups keep no user dimension."""

TEAM_QUALITY_DIVERGENCE = AlertRule.model_validate({
    "name": "keel.team-quality-divergence", "measure": "acceptance_rate",
    "kind": "divergence", "window": "24h", "scope": AlertScope(by="team", within="feature"),
    "direction": "below", "warning": 0.25, "critical": 0.5, "min_sample": 30,
    "no_data": "ok", "keep_firing_for": 5,
    "description": "One team accepts far fewer answers of a feature than the feature does."})
"""Catches: a team whose acceptance rate on a feature is a quarter or more below the
feature's over all its teams, in the same 24 hours: the same feature working worse for one
team (its data, its language, its use of it)."""

DRIFT = AlertRule.model_validate({
    "name": "keel.drift", "measure": "drift", "scope": _PER_FEATURE, "window": "1h",
    "critical": 0.5, "no_data": "ok",
    "description": "A feature's traffic no longer looks like its traffic before."})
"""Catches: the latest scheduled drift check of a feature (the drift: section: by default
the last 24 hours against the 7 days before) found its requests' texts or descriptors
changed: a new topic, longer prompts, another language, more refusals. It resolves when a
later check finds none. Features without checks have no series."""

BUILTINS: tuple[AlertRule, ...] = (REWORK_SURGE, UNIT_COST_CREEP, VALUE_UNIT_COST_CREEP,
                                   ESCALATION_RISING, TEAM_QUALITY_DIVERGENCE, DRIFT)


def rules_for(config: AlertsConfig) -> list[AlertRule]:
    """The rules to evaluate: the built-ins (when on) not replaced by a config rule of the
    same name, then the config's rules."""
    own = {r.name for r in config.rules}
    builtins = [r for r in BUILTINS if r.name not in own] if config.builtins else []
    return [*builtins, *config.rules]
