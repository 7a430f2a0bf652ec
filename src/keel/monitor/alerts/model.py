"""What an evaluation says: the state of one rule's series, and the numbers behind it.

Plain data (no store, no config): an ``Evaluation`` turns into a JSON-able dict and back,
so alert state can be stored and shown as it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    OK = "ok"
    WARNING = "warning"  # the warning level is crossed
    ALERT = "alert"  # the critical level is crossed (or no data, with ``no_data: alert``)
    NO_DATA = "no_data"  # nothing to judge, or less evidence than min_sample
    SILENCED = "silenced"  # set by silences on top of an evaluation, never by evaluate()

    @property
    def breaching(self) -> bool:
        return self in (State.WARNING, State.ALERT)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as None: JSON has no infinity (PostgreSQL's
    JSON type refuses it), and a change from zero is an infinite one."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def series_key(rule: str, series: dict[str, str]) -> str:
    """One stable string per rule and series: ``rule`` or ``rule|feature=a,team=b``."""
    if not series:
        return rule
    return rule + "|" + ",".join(f"{k}={v}" for k, v in sorted(series.items()))


@dataclass(frozen=True, slots=True)
class Evaluation:
    rule: str
    series: dict[str, str]  # {} for the rule's whole scope, else e.g. {"feature": "support"}
    state: State
    value: float | None  # the measure over the window
    compared_with: float | None  # the level, baseline, history centre or peer value
    n: int  # the evidence: requests, or judged answers for the quality rates
    reason: str  # in plain words, with the numbers
    since: float  # the window evaluated, [since, until)
    until: float
    score: float | None = None  # change: relative change; anomaly: z; divergence: relative gap
    level: float | None = None  # the level the score or value was held against
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return series_key(self.rule, self.series)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the state as its value, a non-finite number (an infinite change) as
        None."""
        out = json_safe(asdict(self))
        out["state"] = self.state.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(**{**data, "state": State(data["state"])})
