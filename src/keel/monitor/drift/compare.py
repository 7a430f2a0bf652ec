"""Per-descriptor drift: a reference sample against a current sample, one method each.

The method follows the sample size and the kind of descriptor, as Evidently chooses it:

=============  ===============================  =========================================
descriptor     both sides below ``large_n``     at ``large_n`` rows or more on each side
=============  ===============================  =========================================
numeric        two-sample Kolmogorov-Smirnov    Wasserstein-1 distance / reference std
               (drift: p < ``p_threshold``)     (drift: > ``wasserstein_threshold``, 0.1)
categorical    chi-square on the 2 x k table    Jensen-Shannon distance, base 2, in [0, 1]
               (drift: p < ``p_threshold``)     (drift: > ``js_threshold``, 0.1)
=============  ===============================  =========================================

Both distances get a noise floor, so that two stable samples near ``large_n`` rows are
not flagged for their sampling noise alone: the Wasserstein threshold is at least
``4 * sqrt(1/n + 1/m)`` (stable lognormal samples of 1,000 a side reach 0.11 at their 99th
percentile, above Evidently's 0.1), and the Jensen-Shannon threshold at least the
distance that chi-square noise reaches with probability 0.001 (JS divergence in nats is
about chi-square * (1/n + 1/m) / 8 for two samples). The result carries the threshold
used.

``method="psi"`` asks for the population stability index instead (numeric: ten bins at
the reference's deciles; drift: > ``psi_threshold``, 0.1). Below ``min_n`` rows on either
side the result is ``not enough data``: no verdict, never an alarm.

Chi-square pools the categories whose expected count is below 5 into one (Cochran's rule),
so that the asymptotic p-value holds; a descriptor with one category left has no test and
is not drifted. Missing values (None) are left out of both sides before counting.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

from keel.monitor.drift._special import chi2_isf, chi2_sf, ks_pvalue

Method = Literal["ks", "wasserstein", "chisquare", "jensenshannon", "psi"]
Status = Literal["ok", "not_enough_data"]

LARGE_N = 1000
MIN_N = 30
P_THRESHOLD = 0.01
WASSERSTEIN_THRESHOLD = 0.1
JS_THRESHOLD = 0.1
PSI_THRESHOLD = 0.1
_PSI_EPS = 1e-4
_STD_FLOOR = 1e-3
WASSERSTEIN_NOISE_Z = 4.0
JS_NOISE_P = 0.001


@dataclass(frozen=True, slots=True)
class DescriptorDrift:
    """What one comparison found. ``drifted`` is None when there was not enough data."""

    name: str
    kind: Literal["numeric", "categorical", "text"]
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool | None
    n_reference: int
    n_current: int
    status: Status = "ok"
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "method": self.method,
                "statistic": self.statistic, "p_value": self.p_value,
                "threshold": self.threshold, "drifted": self.drifted,
                "n_reference": self.n_reference, "n_current": self.n_current,
                "status": self.status, "detail": self.detail}


def _not_enough(name: str, kind: Literal["numeric", "categorical"], method: str,
                threshold: float, n_ref: int, n_cur: int, min_n: int) -> DescriptorDrift:
    return DescriptorDrift(name, kind, method, None, None, threshold, None, n_ref, n_cur,
                           "not_enough_data", f"not enough data: fewer than {min_n} rows "
                           "on a side")


# numeric ---------------------------------------------------------------------------------


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """sup |F_a - F_b| over the pooled values; ``a`` and ``b`` sorted ascending."""
    n, m = len(a), len(b)
    i = j = 0
    d = 0.0
    while i < n and j < m:
        x = a[i] if a[i] <= b[j] else b[j]
        while i < n and a[i] == x:
            i += 1
        while j < m and b[j] == x:
            j += 1
        gap = abs(i / n - j / m)
        if gap > d:
            d = gap
    return d


def wasserstein(a: Sequence[float], b: Sequence[float]) -> float:
    """Wasserstein-1 distance between two empirical distributions (sorted ascending):
    the integral of |F_a - F_b|."""
    n, m = len(a), len(b)
    i = j = 0
    fa = fb = 0.0
    prev: float | None = None
    total = 0.0
    while i < n or j < m:
        x = a[i] if j >= m or (i < n and a[i] <= b[j]) else b[j]
        if prev is not None:
            total += abs(fa - fb) * (x - prev)
        while i < n and a[i] == x:
            i += 1
        while j < m and b[j] == x:
            j += 1
        fa, fb = i / n, j / m
        prev = x
    return total


def _std(values: Sequence[float]) -> float:
    n = len(values)
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / max(1, n - 1))


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two proportion vectors (empty bins floored)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, _PSI_EPS), max(a, _PSI_EPS)
        total += (a - e) * math.log(a / e)
    return total


def _numeric_psi_shares(ref: Sequence[float], cur: Sequence[float],
                        bins: int = 10) -> tuple[list[float], list[float]]:
    n = len(ref)
    edges = sorted({ref[min(n - 1, (k * n) // bins)] for k in range(1, bins)})
    ref_counts = [0] * (len(edges) + 1)
    cur_counts = [0] * (len(edges) + 1)
    for v in ref:
        ref_counts[bisect.bisect_right(edges, v)] += 1
    for v in cur:
        cur_counts[bisect.bisect_right(edges, v)] += 1
    return [c / len(ref) for c in ref_counts], [c / len(cur) for c in cur_counts]


def compare_numeric(name: str, reference: Sequence[float | None],
                    current: Sequence[float | None], *, method: Method | None = None,
                    large_n: int = LARGE_N, min_n: int = MIN_N,
                    p_threshold: float = P_THRESHOLD,
                    wasserstein_threshold: float = WASSERSTEIN_THRESHOLD,
                    psi_threshold: float = PSI_THRESHOLD) -> DescriptorDrift:
    """Compare a numeric descriptor: KS below ``large_n`` rows a side, Wasserstein above,
    or ``method`` when given (``ks``, ``wasserstein`` or ``psi``)."""
    ref = sorted(float(v) for v in reference if v is not None and math.isfinite(v))
    cur = sorted(float(v) for v in current if v is not None and math.isfinite(v))
    n_ref, n_cur = len(ref), len(cur)
    chosen = method or ("wasserstein" if min(n_ref, n_cur) >= large_n else "ks")
    if chosen not in ("ks", "wasserstein", "psi"):
        raise ValueError(f"{chosen} is not a method for a numeric descriptor")
    threshold = {"ks": p_threshold, "wasserstein": wasserstein_threshold,
                 "psi": psi_threshold}[chosen]
    if chosen == "wasserstein" and n_ref and n_cur:
        threshold = max(threshold, WASSERSTEIN_NOISE_Z * math.sqrt(1 / n_ref + 1 / n_cur))
    if min(n_ref, n_cur) < min_n:
        return _not_enough(name, "numeric", chosen, threshold, n_ref, n_cur, min_n)
    if chosen == "ks":
        d = ks_statistic(ref, cur)
        p = ks_pvalue(d, n_ref, n_cur)
        return DescriptorDrift(name, "numeric", "ks", d, p, threshold, p < threshold,
                               n_ref, n_cur)
    if chosen == "wasserstein":
        w = wasserstein(ref, cur) / max(_std(ref), _STD_FLOOR)
        return DescriptorDrift(name, "numeric", "wasserstein", w, None, threshold,
                               w > threshold, n_ref, n_cur,
                               detail="normalised by the reference's standard deviation")
    e, a = _numeric_psi_shares(ref, cur)
    value = psi(e, a)
    return DescriptorDrift(name, "numeric", "psi", value, None, threshold, value > threshold,
                           n_ref, n_cur, detail=f"{len(e)} bins at the reference's deciles")


# categorical -----------------------------------------------------------------------------


def _chi_square(ref: Counter[Hashable], cur: Counter[Hashable],
                n_ref: int, n_cur: int) -> tuple[float, int]:
    """Pearson's statistic and degrees of freedom of the 2 x k table, categories with an
    expected count below 5 on either side pooled into one."""
    total = n_ref + n_cur
    kept: list[tuple[int, int]] = []
    pooled_r = pooled_c = 0
    for key in set(ref) | set(cur):
        r, c = ref.get(key, 0), cur.get(key, 0)
        col = r + c
        if col * min(n_ref, n_cur) / total < 5.0:
            pooled_r += r
            pooled_c += c
        else:
            kept.append((r, c))
    if pooled_r + pooled_c:
        kept.append((pooled_r, pooled_c))
    stat = 0.0
    for r, c in kept:
        col = r + c
        er, ec = col * n_ref / total, col * n_cur / total
        stat += (r - er) ** 2 / er + (c - ec) ** 2 / ec
    return stat, len(kept) - 1


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (the square root of the divergence, base 2): 0 .. 1."""
    div = 0.0
    for a, b in zip(p, q, strict=True):
        mid = (a + b) / 2.0
        if a > 0.0:
            div += 0.5 * a * math.log2(a / mid)
        if b > 0.0:
            div += 0.5 * b * math.log2(b / mid)
    return math.sqrt(max(0.0, div))


def compare_categorical(name: str, reference: Sequence[Hashable | None],
                        current: Sequence[Hashable | None], *,
                        method: Method | None = None, large_n: int = LARGE_N,
                        min_n: int = MIN_N, p_threshold: float = P_THRESHOLD,
                        js_threshold: float = JS_THRESHOLD,
                        psi_threshold: float = PSI_THRESHOLD) -> DescriptorDrift:
    """Compare a categorical descriptor: chi-square below ``large_n`` rows a side,
    Jensen-Shannon distance above, or ``method`` (``chisquare``, ``jensenshannon``,
    ``psi``)."""
    ref: Counter[Hashable] = Counter(v for v in reference if v is not None)
    cur: Counter[Hashable] = Counter(v for v in current if v is not None)
    n_ref, n_cur = ref.total(), cur.total()
    chosen = method or ("jensenshannon" if min(n_ref, n_cur) >= large_n else "chisquare")
    if chosen not in ("chisquare", "jensenshannon", "psi"):
        raise ValueError(f"{chosen} is not a method for a categorical descriptor")
    threshold = {"chisquare": p_threshold, "jensenshannon": js_threshold,
                 "psi": psi_threshold}[chosen]
    if min(n_ref, n_cur) < min_n:
        return _not_enough(name, "categorical", chosen, threshold, n_ref, n_cur, min_n)
    if chosen == "chisquare":
        stat, df = _chi_square(ref, cur, n_ref, n_cur)
        if df < 1:
            return DescriptorDrift(name, "categorical", "chisquare", 0.0, 1.0, threshold,
                                   False, n_ref, n_cur, detail="one category: nothing to test")
        p = chi2_sf(stat, df)
        return DescriptorDrift(name, "categorical", "chisquare", stat, p, threshold,
                               p < threshold, n_ref, n_cur, detail=f"{df} degrees of freedom")
    keys = sorted(set(ref) | set(cur), key=repr)
    p_ref = [ref.get(k, 0) / n_ref for k in keys]
    p_cur = [cur.get(k, 0) / n_cur for k in keys]
    if chosen == "jensenshannon":
        value = js_distance(p_ref, p_cur)
        if len(keys) > 1:
            noise = chi2_isf(JS_NOISE_P, len(keys) - 1) * (1 / n_ref + 1 / n_cur) / 8.0
            threshold = max(threshold, math.sqrt(noise / math.log(2.0)))
        return DescriptorDrift(name, "categorical", "jensenshannon", value, None, threshold,
                               value > threshold, n_ref, n_cur, detail="base 2")
    value = psi(p_ref, p_cur)
    return DescriptorDrift(name, "categorical", "psi", value, None, threshold,
                           value > threshold, n_ref, n_cur)
