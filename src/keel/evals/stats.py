"""The statistics the comparison and the gate stand on: the Wilson score interval of a
pass rate, and the one-sided exact sign test over paired cases (McNemar's exact test when
each case ran once)."""

from __future__ import annotations

import math

EXACT_LIMIT = 2000  # sign test: exact integer sums up to this many untied cases, then logs


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for the default ``z``); (0, 1) when
    ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def sign_test_p(worse: int, better: int) -> float:
    """One-sided exact sign test: P(X >= worse) for X ~ Binomial(worse + better, 1/2), the
    chance of at least this many worse cases if worse and better were equally likely.
    1.0 when nothing differs."""
    n = worse + better
    if n <= 0 or worse <= 0:
        return 1.0
    if n <= EXACT_LIMIT:
        tail = sum(math.comb(n, k) for k in range(worse, n + 1))
        return min(1.0, tail / (1 << n))
    # log space: log C(n, k) by recurrence from lgamma, summed with a running log-sum-exp
    log_term = math.lgamma(n + 1) - math.lgamma(worse + 1) - math.lgamma(n - worse + 1)
    acc = log_term
    for k in range(worse, n):
        log_term += math.log(n - k) - math.log(k + 1)
        hi, lo = (acc, log_term) if acc >= log_term else (log_term, acc)
        acc = hi + math.log1p(math.exp(lo - hi))
    return min(1.0, math.exp(acc - n * math.log(2.0)))
