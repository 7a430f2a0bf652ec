"""What a refused or unchecked request is told, and the soft-threshold warning: each names
the limit or budget, the numbers and when it frees up."""

from __future__ import annotations

import logging
import math

from keel.errors import BudgetExceeded, LimitsUnavailable, RateLimited
from keel.limits.backend import Refusal, SoftCrossing
from keel.limits.periods import format_reset
from keel.limits.rules import BudgetTarget, Plan, from_nano

log = logging.getLogger("keel.limits")


def refusal_error(plan: Plan, ends: list[float | None], amount: int, r: Refusal,
                  now: float) -> RateLimited | BudgetExceeded:
    if r.kind == "limit":
        t = plan.limits[r.index]
        wait = max(1, math.ceil(r.free_at - now))
        unit = "requests" if t.kind == "rpm" else "tokens"
        which = f"{t.scope}:{t.match}" + (f", each {t.scope} separately"
                                          if t.match == "*" else "")
        return RateLimited(
            f"rate limit exceeded: {t.scope} '{t.value}' may use {t.limit:,} {unit} per "
            f"minute ({t.kind} limit {which}); the window frees up in {wait} s",
            headers={"retry-after": str(wait)})
    b = plan.budgets[r.index]
    end = ends[r.index]
    headers = {} if end is None else {"retry-after": str(max(1, math.ceil(end - now)))}
    rule = b.rule
    return BudgetExceeded(
        f"budget exceeded: the {rule.period} budget of {rule.scope} '{b.value}' is "
        f"{usd(rule.usd)}; spent {usd(from_nano(r.spent))}, reserved "
        f"{usd(from_nano(r.reserved))}, and this request needs up to "
        f"{usd(from_nano(amount))}; it resets {reset_phrase(end)}",
        headers=headers)


def unavailable(b: BudgetTarget, why: str, retry_s: float) -> LimitsUnavailable:
    """A budget set to fail closed could not be checked."""
    return LimitsUnavailable(
        f"budgets cannot be checked: {why}; the {b.rule.period} budget of {b.rule.scope} "
        f"'{b.value}' is set to refuse requests then (on_store_error: closed); retry shortly",
        headers={"retry-after": str(max(1, math.ceil(retry_s)))})


def warn_soft(plan: Plan, ends: list[float | None], crossed: list[SoftCrossing]) -> None:
    for k, spent in crossed:
        rule = plan.budgets[k].rule
        log.warning(
            "budget soft threshold: %s %s '%s' has spent %s of %s (%.0f%%, soft_pct %s); "
            "it resets %s", rule.period, rule.scope, plan.budgets[k].value,
            usd(from_nano(spent)), usd(rule.usd), 100.0 * from_nano(spent) / rule.usd,
            rule.soft_pct, reset_phrase(ends[k]))


def usd(v: float) -> str:
    text = f"{v:.6f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{v:.2f}"
    return "$" + text


def reset_phrase(end: float | None) -> str:
    return "never (a total budget)" if end is None else f"at {format_reset(end)}"
