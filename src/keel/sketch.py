"""A mergeable quantile sketch with bounded relative error (the DDSketch idea); a leaf
module (imports nothing from keel).

A positive value ``v`` falls in bucket ``ceil(log(v) / log(GAMMA))``; every value in a
bucket is within ``ALPHA`` (1%) of the bucket's representative value. Sketches are just
bucket counts, so merging two is adding counts: rollups store one row per (bucket key,
metric, index) and add to it with an upsert, which is exact under concurrent writers and
across replicas, and any window's percentiles come from summing the counts it covers.
Values at or below ``MIN_VALUE`` (0 ms) share one bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-3  # ms
ZERO_INDEX = -(2**30)


def index(value: float) -> int:
    if value <= MIN_VALUE:
        return ZERO_INDEX
    return math.ceil(math.log(value) / _LOG_GAMMA)


def value_of(idx: int) -> float:
    """The bucket's representative value (relative error at most ALPHA for its members)."""
    if idx == ZERO_INDEX:
        return 0.0
    return 2 * GAMMA ** idx / (GAMMA + 1)


def quantiles(counts: Iterable[tuple[int, int]], qs: Iterable[float]) -> list[float | None]:
    """Quantiles (nearest rank) of the values counted in ``(index, count)`` pairs."""
    ordered = sorted((i, c) for i, c in counts if c > 0)
    total = sum(c for _, c in ordered)
    out: list[float | None] = []
    for q in qs:
        if total == 0:
            out.append(None)
            continue
        rank = max(1, math.ceil(q * total))
        seen = 0
        for i, c in ordered:
            seen += c
            if seen >= rank:
                out.append(value_of(i))
                break
    return out
