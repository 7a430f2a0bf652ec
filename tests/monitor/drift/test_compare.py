"""Per-descriptor comparisons: the method by size and kind, the statistics, not enough data."""

import math
import random

import pytest

from keel.monitor.drift.compare import (
    compare_categorical,
    compare_numeric,
    js_distance,
    ks_statistic,
    psi,
    wasserstein,
)


def _lognormal(seed: int, n: int, scale: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [scale * math.exp(rng.gauss(3.0, 0.5)) for _ in range(n)]


def test_ks_statistic_and_wasserstein_on_small_hand_examples() -> None:
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert ks_statistic([1, 2, 2, 3], [1, 2, 2, 3]) == 0.0
    assert ks_statistic([1, 1, 1], [2, 2]) == 1.0
    assert wasserstein([0.0, 1.0], [1.0, 2.0]) == pytest.approx(1.0)
    assert wasserstein([0.0, 0.0, 3.0], [0.0, 3.0, 3.0]) == pytest.approx(1.0)
    assert wasserstein([5.0], [5.0]) == 0.0


def test_small_numeric_samples_use_ks_with_a_p_value_and_flag_a_shift() -> None:
    same = compare_numeric("len", _lognormal(1, 300), _lognormal(2, 300))
    assert (same.method, same.kind, same.n_reference, same.n_current) == ("ks", "numeric", 300, 300)
    assert same.p_value is not None and same.p_value > 0.01 and same.drifted is False
    moved = compare_numeric("len", _lognormal(1, 300), _lognormal(2, 300, scale=1.5))
    assert moved.p_value is not None and moved.p_value < 1e-6 and moved.drifted is True
    assert moved.threshold == 0.01 and moved.statistic is not None and moved.statistic > 0.2


def test_large_numeric_samples_use_the_normalised_wasserstein_distance() -> None:
    ref = _lognormal(3, 2000)
    same = compare_numeric("len", ref, _lognormal(4, 2000))
    assert same.method == "wasserstein" and same.p_value is None and same.drifted is False
    moved = compare_numeric("len", ref, _lognormal(4, 2000, scale=1.3))
    assert moved.drifted is True and moved.statistic is not None and moved.statistic > 0.3
    # the noise floor: 4 * sqrt(1/2000 + 1/2000) = 0.126 is above Evidently's 0.1
    assert moved.threshold == pytest.approx(4 * math.sqrt(2 / 2000))
    big = compare_numeric("len", _lognormal(5, 5000), _lognormal(6, 5000))
    assert big.threshold == 0.1


def test_fewer_rows_than_the_minimum_give_no_verdict() -> None:
    r = compare_numeric("latency", [1.0] * 29 + [None], _lognormal(1, 500, scale=100))
    assert (r.status, r.drifted, r.statistic, r.n_reference) == ("not_enough_data", None, None, 29)
    c = compare_categorical("lang", ["en"] * 500, ["de"] * 10)
    assert c.status == "not_enough_data" and c.drifted is None and c.method == "chisquare"


def test_missing_and_non_finite_values_are_left_out() -> None:
    r = compare_numeric("x", [*_lognormal(1, 100), None, math.nan], _lognormal(2, 100))
    assert r.n_reference == 100


def test_chi_square_on_a_two_by_two_table_matches_the_hand_computation() -> None:
    # 60/40 against 40/60: expected 50 each, chi2 = 4 * 10^2 / 50 = 8, df 1, p = 0.004678
    r = compare_categorical("refusal", ["yes"] * 60 + ["no"] * 40, ["yes"] * 40 + ["no"] * 60)
    assert r.method == "chisquare" and r.statistic == pytest.approx(8.0)
    assert r.p_value == pytest.approx(0.0046777, rel=1e-4)
    assert r.drifted is True and r.detail == "1 degrees of freedom"


def test_chi_square_pools_rare_categories_and_skips_a_single_category() -> None:
    ref = ["en"] * 95 + ["fr", "de", "es", "it", "pt"]
    cur = ["en"] * 94 + ["fr", "de", "ja", "ko", "zh", "ru"]
    r = compare_categorical("lang", ref, cur)
    assert r.detail == "1 degrees of freedom"  # en, and the rest pooled
    assert r.drifted is False
    one = compare_categorical("lang", ["en"] * 50, ["en"] * 60)
    assert (one.drifted, one.p_value) == (False, 1.0)


def test_large_categorical_samples_use_the_jensen_shannon_distance() -> None:
    rng = random.Random(0)
    ref = [rng.choice("abc") for _ in range(3000)]
    same = compare_categorical("tool", ref, [rng.choice("abc") for _ in range(3000)])
    assert same.method == "jensenshannon" and same.drifted is False and same.threshold == 0.1
    moved = compare_categorical("tool", ref, [rng.choice("abcdd") for _ in range(3000)])
    assert moved.drifted is True and moved.statistic is not None and moved.statistic > 0.3


def test_distances_have_their_bounds() -> None:
    assert js_distance([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    # (0.6 - 0.4) ln(0.6/0.4) + (0.4 - 0.6) ln(0.4/0.6) = 0.4 ln 1.5
    assert psi([0.4, 0.6], [0.6, 0.4]) == pytest.approx(0.4 * math.log(1.5))


def test_psi_is_available_for_both_kinds() -> None:
    n = compare_numeric("len", _lognormal(1, 400), _lognormal(2, 400, scale=2.0), method="psi")
    assert n.method == "psi" and n.drifted is True and n.threshold == 0.1
    assert n.detail == "10 bins at the reference's deciles"
    c = compare_categorical("lang", ["en"] * 90 + ["de"] * 10, ["en"] * 88 + ["de"] * 12,
                            method="psi")
    assert c.method == "psi" and c.drifted is False and c.p_value is None


def test_a_method_of_the_other_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not a method"):
        compare_numeric("x", [1.0] * 50, [1.0] * 50, method="chisquare")
    with pytest.raises(ValueError, match="not a method"):
        compare_categorical("x", ["a"] * 50, ["a"] * 50, method="ks")


def test_result_as_dict_names_every_field() -> None:
    d = compare_numeric("len", _lognormal(1, 100), _lognormal(2, 100)).as_dict()
    assert set(d) == {"name", "kind", "method", "statistic", "p_value", "threshold", "drifted",
                      "n_reference", "n_current", "status", "detail"}
