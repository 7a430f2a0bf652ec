"""Special functions for the tests' p-values, written here because scipy is no dependency.

* ``kolmogorov_sf(x)``: P(K > x) for the Kolmogorov distribution, the limit of
  sqrt(n) * D_n. Two series: the alternating one (fast for x >= 1.18) and the Jacobi theta
  form (fast below), each summed until its terms vanish.
* ``ks_pvalue(d, n, m)``: the asymptotic two-sample p-value with Stephens' small-sample
  correction, Q((sqrt(e) + 0.12 + 0.11 / sqrt(e)) * d) with e = n * m / (n + m), as in
  Numerical Recipes' ``kstwo``.
* ``gamma_q(a, x)``: the regularised upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a):
  the power series for x < a + 1, Lentz's continued fraction above.
  ``chi2_sf(x, df) = gamma_q(df / 2, x / 2)``; ``chi2_isf(p, df)``, its inverse, by
  bisection.
"""

from __future__ import annotations

import math

_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 10_000


def kolmogorov_sf(x: float) -> float:
    """P(K > x), K the Kolmogorov distribution."""
    if x <= 0.0:
        return 1.0
    if x < 1.18:
        # 1 - sqrt(2 pi) / x * sum_{j>=1} exp(-(2j - 1)^2 pi^2 / (8 x^2))
        f = -(math.pi ** 2) / (8.0 * x * x)
        total = 0.0
        for j in range(1, 100):
            term = math.exp(f * (2 * j - 1) ** 2)
            total += term
            if term < _EPS * total:
                break
        return max(0.0, min(1.0, 1.0 - math.sqrt(2.0 * math.pi) / x * total))
    # 2 * sum_{j>=1} (-1)^(j-1) exp(-2 j^2 x^2)
    total = 0.0
    sign = 1.0
    for j in range(1, 100):
        term = math.exp(-2.0 * j * j * x * x)
        total += sign * term
        if term < _EPS * abs(total):
            break
        sign = -sign
    return max(0.0, min(1.0, 2.0 * total))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic p-value of the two-sample Kolmogorov-Smirnov statistic ``d``."""
    en = math.sqrt(n * m / (n + m))
    return kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


def gamma_q(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x), a > 0, x >= 0."""
    if a <= 0.0:
        raise ValueError("gamma_q needs a > 0")
    if x <= 0.0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        # P(a, x) = x^a e^-x / Gamma(a + 1) * sum_k x^k / ((a + 1) ... (a + k))
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(_MAX_TERMS):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, min(1.0, 1.0 - total * math.exp(log_prefix)))
    # Q(a, x) = x^a e^-x / Gamma(a) * 1 / (x + 1 - a - 1 (1 - a) / (x + 3 - a - ...)),
    # evaluated with the modified Lentz method
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return max(0.0, min(1.0, math.exp(log_prefix) * h))


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X chi-square distributed with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("chi2_sf needs df >= 1")
    return gamma_q(df / 2.0, x / 2.0)


def chi2_isf(p: float, df: int) -> float:
    """The x with ``chi2_sf(x, df) == p`` (0 < p < 1), to a relative 1e-10."""
    if not 0.0 < p < 1.0:
        raise ValueError("chi2_isf needs 0 < p < 1")
    lo, hi = 0.0, max(1.0, 2.0 * df)
    while chi2_sf(hi, df) > p:
        hi *= 2.0
    while hi - lo > 1e-10 * hi:
        mid = (lo + hi) / 2.0
        if chi2_sf(mid, df) > p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0
