"""The p-value functions against known values of the Kolmogorov and chi-square tails."""

import math

import pytest

from keel.monitor.drift._special import chi2_isf, chi2_sf, gamma_q, kolmogorov_sf, ks_pvalue


@pytest.mark.parametrize(("x", "expected"), [
    (1.2238, 0.10), (1.3581, 0.05), (1.4802, 0.025), (1.6276, 0.01), (1.9495, 0.001),
])
def test_kolmogorov_tail_matches_the_classical_critical_values(x: float, expected: float) -> None:
    assert kolmogorov_sf(x) == pytest.approx(expected, rel=2e-3)


def test_kolmogorov_tail_is_continuous_where_the_two_series_meet() -> None:
    assert kolmogorov_sf(1.18 - 1e-9) == pytest.approx(kolmogorov_sf(1.18 + 1e-9), abs=1e-8)
    assert kolmogorov_sf(0.5) == pytest.approx(0.9639452436648751, abs=1e-12)
    assert kolmogorov_sf(0.0) == 1.0
    assert kolmogorov_sf(0.2) == pytest.approx(1.0, abs=1e-12)
    assert kolmogorov_sf(4.0) < 1e-12


def test_ks_pvalue_applies_the_small_sample_correction() -> None:
    en = math.sqrt(100 * 100 / 200)
    assert ks_pvalue(0.2, 100, 100) == kolmogorov_sf((en + 0.12 + 0.11 / en) * 0.2)
    # the uncorrected limit would be Q(sqrt(50) * 0.2) = Q(1.414) = 0.0366
    assert ks_pvalue(0.2, 100, 100) == pytest.approx(0.03138, abs=1e-4)


@pytest.mark.parametrize(("x", "df", "expected"), [
    (3.841458820694124, 1, 0.05), (6.634896601021214, 1, 0.01), (5.991464547107979, 2, 0.05),
    (18.307038053275146, 10, 0.05), (124.34211340400407, 100, 0.05), (0.5, 3, 0.9188914),
    (2.0, 2, math.exp(-1.0)),
])
def test_chi_square_tail_matches_known_values(x: float, df: int, expected: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(expected, rel=1e-4)


def test_regularised_gamma_matches_its_closed_forms() -> None:
    for x in (0.01, 0.5, 1.0, 3.0, 10.0, 40.0):
        assert gamma_q(1.0, x) == pytest.approx(math.exp(-x), rel=1e-12)
        assert gamma_q(0.5, x) == pytest.approx(math.erfc(math.sqrt(x)), rel=1e-10)
        assert gamma_q(3.0, x) == pytest.approx(math.exp(-x) * (1 + x + x * x / 2), rel=1e-10)
        # a half-integer: Q(5/2, x) = erfc(sqrt x) + e^-x (x^1/2 / G(3/2) + x^3/2 / G(5/2))
        half = math.erfc(math.sqrt(x)) + math.exp(-x) * (
            x ** 0.5 / math.gamma(1.5) + x ** 1.5 / math.gamma(2.5))
        assert gamma_q(2.5, x) == pytest.approx(half, rel=1e-9)
    assert gamma_q(2.5, 0.0) == 1.0
    with pytest.raises(ValueError):
        gamma_q(0.0, 1.0)
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)


def test_chi_square_inverse_undoes_the_tail() -> None:
    assert chi2_isf(0.05, 1) == pytest.approx(3.841458820694124, rel=1e-8)
    for df in (1, 4, 30):
        for p in (0.5, 0.01, 0.001):
            assert chi2_sf(chi2_isf(p, df), df) == pytest.approx(p, rel=1e-6)
