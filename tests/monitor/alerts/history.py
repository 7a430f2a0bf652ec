"""Synthetic histories written through keel's real write paths: traces with
``insert_rows(trace_values(Trace))``, feedback with ``keel.store.feedback.insert_feedback``,
outcomes with ``insert_outcome``; each rolled up as the gateway and the API do."""

from __future__ import annotations

import random
from dataclasses import dataclass

from keel.store import Store
from keel.store.feedback import insert_feedback, insert_outcome
from keel.store.traces import insert_rows, trace_values
from keel.types import Trace, Usage

HOUR = 3600.0
DAY = 86400.0
NOW = 1_790_000_000.0 - (1_790_000_000 % DAY) + 10 * DAY  # a UTC midnight: windows end here


@dataclass
class Slice:
    """Traffic of one feature and team over [start, end)."""

    start: float
    end: float
    requests: int
    feature: str = "support"
    team: str = "a"
    model: str = "m1"
    cost_usd: float = 0.01  # per request
    errors: int = 0  # of the requests
    latency_ms: float = 200.0
    # judged answers among the requests: outcome -> count (the rest get no feedback)
    outcomes: dict[str, int] | None = None
    value_units: int = 0  # ticket_resolved outcomes in the slice


async def write(store: Store, slices: list[Slice], rng: random.Random) -> None:
    traces: list[Trace] = []
    feedback: list[tuple[Trace, str]] = []
    outcomes = []
    for s in slices:
        kinds = [o for o, k in (s.outcomes or {}).items() for _ in range(k)]
        assert len(kinds) <= s.requests - s.errors
        kinds += [""] * (s.requests - s.errors - len(kinds))
        rng.shuffle(kinds)
        ok_i = 0
        for i in range(s.requests):
            t = Trace(id=f"t{rng.getrandbits(64):016x}",
                      start_time=rng.uniform(s.start, s.end - 1), endpoint="chat",
                      team=s.team, feature=s.feature, model_requested=s.model)
            failed = i < s.errors
            t.status = 500 if failed else 200
            t.error_type = "upstream_error" if failed else None
            t.latency_ms = s.latency_ms * rng.uniform(0.9, 1.1)
            t.usage = Usage(input_tokens=100, output_tokens=50)
            t.cost_usd = 0.0 if failed else s.cost_usd * rng.uniform(0.97, 1.03)
            t.attempts = 1
            t.end_time = t.start_time + t.latency_ms / 1000
            traces.append(t)
            if not failed:
                if kinds[ok_i]:
                    feedback.append((t, kinds[ok_i]))
                ok_i += 1
        for _ in range(s.value_units):
            outcomes.append({"id": f"o{rng.getrandbits(64):016x}", "team": s.team,
                             "name": "ticket_resolved", "value": 1.0, "feature": s.feature,
                             "trace_ids": None, "at": rng.uniform(s.start, s.end - 1),
                             "key_id": None})
    for i in range(0, len(traces), 200):
        await insert_rows(store, [trace_values(t) for t in traces[i:i + 200]], [])
    for t, outcome in feedback:
        await insert_feedback(store, {
            "id": f"fb_{t.id}", "trace_id": t.id, "at": t.start_time + 60,
            "trace_time": t.start_time, "source": "user", "outcome": outcome,
            "critical_error": False, "feature": t.feature, "team": t.team,
            "model": t.model_requested, "prompt": None})
    for row in outcomes:
        await insert_outcome(store, row)


def day(back: int) -> tuple[float, float]:
    """The day ``back`` days before the one ending at NOW (0: the last 24 hours)."""
    return NOW - (back + 1) * DAY, NOW - back * DAY


def hour(back: int) -> tuple[float, float]:
    return NOW - (back + 1) * HOUR, NOW - back * HOUR
