"""The limits: and budgets: sections: rate limits (rpm, tpm) and spending budgets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keel.config.base import _Strict

Scope = Literal["key", "team", "feature", "model"]


class LimitConfig(_Strict):
    scope: Scope
    name: str = Field(description="The key id, team, feature or model name; '*' for each.")
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)


class BudgetConfig(_Strict):
    scope: Literal["key", "team", "feature"]
    name: str
    usd: float = Field(gt=0)
    period: Literal["daily", "weekly", "monthly", "total"] = "monthly"
    soft_pct: float | None = Field(80.0, gt=0, le=100)
    on_store_error: Literal["closed", "open"] = Field(
        "closed", description="If Redis is unreachable (or a counter it lost cannot be "
        "rebuilt from the store): refuse (closed) or admit (open).")
