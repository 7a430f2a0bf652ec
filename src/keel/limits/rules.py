"""Which limits and budgets apply to a request, and the counter keys they use.

The config is compiled once: rules are indexed by scope and exact name, with ``*`` rules
("each value separately") kept apart. The set of targets for a given (key, team, feature,
model) is computed once and cached, so the hot path does one dict lookup.

Money is counted in integer nano-USD in both backends, so sums are exact and a budget
that fits exactly K reservations admits exactly K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keel.config import KeelConfig
from keel.limits.periods import Period

NANO = 1_000_000_000
Kind = Literal["rpm", "tpm"]
_PLAN_CACHE_MAX = 50_000


MAX_USD = 1e9  # larger (or infinite) amounts are clamped: no budget can hold them anyway


def to_nano(usd: float) -> int:
    if not usd > 0:  # also NaN
        return 0
    return round(min(usd, MAX_USD) * NANO)


def from_nano(n: int) -> float:
    return n / NANO


@dataclass(slots=True, frozen=True)
class LimitTarget:
    """One rate-limit counter a request counts against."""

    scope: str
    match: str  # the configured name: a value or '*'
    value: str  # the request's value for the scope
    kind: Kind
    limit: int
    key: str


@dataclass(slots=True, frozen=True)
class BudgetRule:
    scope: str
    match: str
    usd: float
    period: Period
    soft_pct: float | None
    on_store_error: Literal["closed", "open"]
    limit_nano: int = 0
    soft_nano: int = -1  # spend at which the soft warning fires; -1: no soft threshold


def budget_rule(scope: str, match: str, usd: float, period: Period, soft_pct: float | None,
                on_store_error: Literal["closed", "open"]) -> BudgetRule:
    soft = -1 if soft_pct is None else to_nano(usd * soft_pct / 100.0)
    return BudgetRule(scope, match, usd, period, soft_pct, on_store_error, to_nano(usd), soft)


@dataclass(slots=True, frozen=True)
class BudgetTarget:
    """One budget instance (a rule and the request's value) a request reserves in."""

    rule: BudgetRule
    value: str
    base: str  # "{prefix}budget:{scope}:{match}:"
    res_base: str  # "{prefix}budget-res:{scope}:{match}:"

    def keys(self, pk: str) -> tuple[str, str]:
        """The spend hash and the reservation set of the period ``pk``."""
        tail = f"{pk}:{self.value}"
        return self.base + tail, self.res_base + tail


@dataclass(slots=True, frozen=True)
class Plan:
    limits: tuple[LimitTarget, ...]
    tpm: tuple[LimitTarget, ...]
    budgets: tuple[BudgetTarget, ...]
    fail_closed: tuple[BudgetTarget, ...]  # budgets that refuse when Redis is unreachable

    @property
    def empty(self) -> bool:
        return not self.limits and not self.budgets


EMPTY_PLAN = Plan((), (), (), ())


class Rules:
    """The compiled ``limits:`` and ``budgets:`` config."""

    def __init__(self, config: KeelConfig, prefix: str) -> None:
        self.prefix = prefix
        limits: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        for lim in config.limits:  # duplicates of (scope, name) merge to the strictest
            rpm, tpm = limits.get((lim.scope, lim.name), (None, None))
            limits[(lim.scope, lim.name)] = (_min(rpm, lim.rpm), _min(tpm, lim.tpm))
        self.limit_rules = limits
        budgets: dict[tuple[str, str, str], BudgetRule] = {}
        for b in config.budgets:
            k = (b.scope, b.name, b.period)
            old = budgets.get(k)
            if old is not None:
                soft = (old.soft_pct if b.soft_pct is None else
                        b.soft_pct if old.soft_pct is None else min(old.soft_pct, b.soft_pct))
                closed = "closed" in (old.on_store_error, b.on_store_error)
                budgets[k] = budget_rule(b.scope, b.name, min(old.usd, b.usd), b.period, soft,
                                         "closed" if closed else "open")
            else:
                budgets[k] = budget_rule(b.scope, b.name, b.usd, b.period, b.soft_pct,
                                         b.on_store_error)
        self.budget_rules: tuple[BudgetRule, ...] = tuple(budgets.values())
        self._plans: dict[tuple[str | None, str, str, str], Plan] = {}

    @property
    def active(self) -> bool:
        return bool(self.limit_rules or self.budget_rules)

    def limit_key(self, scope: str, match: str, kind: Kind, value: str) -> str:
        return f"{self.prefix}rl:{kind}:{scope}:{match}:{value}"

    def budget_target(self, rule: BudgetRule, value: str) -> BudgetTarget:
        mid = f"{rule.scope}:{rule.match}:"
        return BudgetTarget(rule, value, f"{self.prefix}budget:{mid}",
                            f"{self.prefix}budget-res:{mid}")

    def plan(self, key_id: str | None, team: str, feature: str, model: str) -> Plan:
        ck = (key_id, team, feature, model)
        hit = self._plans.get(ck)
        if hit is None:
            if len(self._plans) >= _PLAN_CACHE_MAX:
                self._plans.clear()
            hit = self._plans[ck] = self._build(
                {"key": key_id, "team": team, "feature": feature, "model": model})
        return hit

    def _build(self, values: dict[str, str | None]) -> Plan:
        limits: list[LimitTarget] = []
        for (scope, match), (rpm, tpm) in self.limit_rules.items():
            value = values[scope]
            if not value or (match != "*" and match != value):
                continue
            if rpm is not None:
                limits.append(LimitTarget(scope, match, value, "rpm", rpm,
                                          self.limit_key(scope, match, "rpm", value)))
            if tpm is not None:
                limits.append(LimitTarget(scope, match, value, "tpm", tpm,
                                          self.limit_key(scope, match, "tpm", value)))
        budgets: list[BudgetTarget] = []
        for rule in self.budget_rules:
            value = values[rule.scope]
            if value and (rule.match == "*" or rule.match == value):
                budgets.append(self.budget_target(rule, value))
        if not limits and not budgets:
            return EMPTY_PLAN
        return Plan(tuple(limits), tuple(t for t in limits if t.kind == "tpm"), tuple(budgets),
                    tuple(b for b in budgets if b.rule.on_store_error == "closed"))


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
