"""A rule's measure read from ``measures.measures`` output, and said in plain words."""

from __future__ import annotations

from typing import Any

from keel.config.alerts import MEASURES, QUALITY_MEASURES

_RATES = frozenset({"error_rate", "availability", "eval_pass_rate", *QUALITY_MEASURES})
_USD = frozenset({"spend_usd", "cost_per_request_usd", "cost_per_value_unit_usd"})


def judged(m: dict[str, Any]) -> int:
    """Answers with an outcome (accepted, edited, rejected, escalated): the quality rates'
    denominator."""
    fb = m["feedback"]
    return int(fb["accepted"] + fb["edited"] + fb["rejected"] + fb["escalated"])


def value_of(measure: str, m: dict[str, Any]) -> float | None:
    """The measure's value in one window's measures (None: it cannot be told)."""
    requests = m["requests"]
    values: dict[str, Any] = {
        "error_rate": m["errors"] / requests if requests else None,
        "availability": m["availability"],
        "latency_p95_ms": m["latency_ms"]["p95"],
        "spend_usd": m["cost_usd"],
        "cost_per_request_usd": m["cost_per_request_usd"],
        "cost_per_value_unit_usd": m.get("cost_per_value_unit_usd"),
        "acceptance_rate": m["acceptance_rate"],
        "rework_rate": m["rework_rate"],
        "escalation_rate": m["escalation_rate"],
        "critical_errors_per_1k": m["critical_errors_per_1k"],
        "guard_blocked": m["guard"]["blocked"],
        "fallbacks": m["fallbacks"],
        "requests": requests,
    }
    v = values[measure]
    return None if v is None else float(v)


def sample_of(measure: str, m: dict[str, Any]) -> int:
    """The evidence behind the value: judged answers for quality rates, else requests."""
    return judged(m) if measure in QUALITY_MEASURES else int(m["requests"])


def sample_words(measure: str, n: int) -> str:
    if measure in QUALITY_MEASURES:
        return f"{n:,} judged answer{'' if n == 1 else 's'}"
    return f"{n:,} request{'' if n == 1 else 's'}"


def label(measure: str) -> str:
    return MEASURES[measure]


def fmt(measure: str, v: float | None) -> str:
    """A value as a person reads it: 31%, $0.0042, 950 ms, 1,204."""
    if v is None:
        return "unknown"
    if measure in _RATES:
        pct = v * 100
        return f"{pct:.0f}%" if abs(pct) >= 10 or pct == 0 else f"{pct:.2g}%"
    if measure in _USD:
        return f"${v:,.2f}" if abs(v) >= 1 else f"${v:.2g}"
    if measure == "latency_p95_ms":
        return f"{v:,.0f} ms"
    if measure == "review_age_s":
        return f"{v / 3600:.1f} h" if v >= 3600 else f"{v / 60:.0f} min"
    if measure in ("critical_errors_per_1k", "drift_auc"):
        return f"{v:.3g}"
    return f"{v:,.0f}"


def pct_change(x: float) -> str:
    if x == float("inf"):
        return "up from zero"
    if x == float("-inf"):
        return "down to zero"
    return f"{x * 100:+.0f}%"
