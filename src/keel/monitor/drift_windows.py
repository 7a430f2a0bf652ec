"""Windows of stored traces for drift detection, sampled in bounded time and memory.

A window's sample is drawn by time, not by scanning: ``n`` instants spread uniformly at
random over the window (seeded), and for each the first trace of the feature that started
at or after it, read down the ``(feature, start_time)`` index with ``LIMIT 1``. The cost is
``n`` indexed lookups whatever the store holds; a trace is sampled with a chance that grows
with the quiet time before it, which over a window of steady traffic is close to uniform
(the same trace drawn twice is kept once). Content comes from the payloads of the sampled
traces only, in one query.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

import orjson
import sqlalchemy as sa

from keel.monitor.drift import Described, DriftConfig, DriftReport, describe, evaluate
from keel.store import Store
from keel.store.db import row_dict
from keel.store.schema import trace_payloads, traces

__all__ = ["check_feature", "report_json", "sample_window"]

COLUMNS = ("id", "start_time", "feature", "status", "latency_ms", "input_tokens",
           "output_tokens", "policy", "guard")


async def sample_window(store: Store, feature: str, since: float, until: float, n: int, *,
                        seed: int = 0) -> list[Described]:
    """Up to ``n`` traces of ``feature`` that started in ``[since, until)``, described."""
    rng = random.Random(f"{seed}:{feature}:{since}:{until}")
    instants = sorted(rng.uniform(since, until) for _ in range(n))
    t = traces.c
    cols = [t[c] for c in COLUMNS]
    rows: dict[str, dict[str, Any]] = {}
    async with store.connect() as conn:
        for at in instants:
            q = (sa.select(*cols).where(t.feature == feature, t.start_time >= at,
                                        t.start_time < until, t.status < 400)
                 .order_by(t.start_time).limit(1))
            row = (await conn.execute(q)).first()
            if row is not None:
                rows.setdefault(str(row[0]), row_dict(row))
        ids = list(rows)
        bodies: dict[str, tuple[Any, Any]] = {}
        for i in range(0, len(ids), 500):
            q = sa.select(trace_payloads).where(trace_payloads.c.trace_id.in_(ids[i:i + 500]))
            for p in (await conn.execute(q)).all():
                bodies[str(p.trace_id)] = (p.request, p.response)
    out: list[Described] = []
    for trace_id, row in rows.items():
        request, response = bodies.get(trace_id, (None, None))
        row["request"] = orjson.loads(request) if request else None
        row["response"] = orjson.loads(response) if response else None
        row["usage"] = {"prompt_tokens": row.pop("input_tokens"),
                        "completion_tokens": row.pop("output_tokens")}
        if row.get("guard") is None and row.get("policy"):
            row["guard"] = []  # a policy ran and nothing triggered
        out.append(describe(row))
    return out


Windows = dict[str, list[float]]


async def check_feature(store: Store, feature: str, now: float, *, current_s: float,
                        reference_s: float, sample: int,
                        seed: int = 0) -> tuple[DriftReport, Windows]:
    """``feature``'s last ``current_s`` against the ``reference_s`` just before it."""
    windows = {"reference": [now - current_s - reference_s, now - current_s],
               "current": [now - current_s, now]}
    (r0, r1), (c0, c1) = windows["reference"], windows["current"]
    ref = await sample_window(store, feature, r0, r1, sample, seed=seed)
    cur = await sample_window(store, feature, c0, c1, sample, seed=seed + 1)
    return evaluate(ref, cur, DriftConfig(seed=seed)), windows


def report_json(report: DriftReport, windows: Windows) -> dict[str, Any]:
    """The whole report as JSON: verdicts, every test with its evidence, the classifier's
    terms and example traces."""
    return {"drifted": report.drifted, "drifted_names": report.drifted_names,
            "windows": windows, "n_reference": report.n_reference,
            "n_current": report.n_current, "p_threshold": report.p_threshold,
            "descriptors": [d.as_dict() for d in report.descriptors],
            "classifier": asdict(report.classifier) if report.classifier else None,
            "notes": report.notes}
