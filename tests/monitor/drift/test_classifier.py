"""The domain classifier: AUC, thresholds, terms, examples; both backends agree."""

import math

import pytest

from keel.monitor.drift import classifier as cls
from keel.monitor.drift.classifier import classify_windows, roc_auc
from tests.monitor.drift._traffic import texts


def test_roc_auc_on_hand_examples() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75


def test_a_new_topic_is_found_with_its_terms_and_examples() -> None:
    ref = texts(1, 300, prefix="r")
    cur = texts(2, 300, topic_share=0.3, prefix="c")
    r = classify_windows(ref, cur, permutations=39)
    assert r.drifted is True and r.auc is not None and r.auc > 0.6
    assert r.threshold is not None and r.auc > r.threshold
    assert r.p_value == pytest.approx(1 / 40)
    top = {t.text for t in r.current_terms[:4]}
    assert top == {"refund", "chargeback", "invoice", "dispute"}
    assert all(t.weight > 0 and t.n_current > t.n_reference for t in r.current_terms[:4])
    assert all(t.weight < 0 for t in r.reference_terms)
    assert len(r.current_examples) == 5 and all(i.startswith("c") for i in r.current_examples)
    held = dict(cur)
    assert all("refund" in held[i] or "chargeback" in held[i] or "invoice" in held[i]
               or "dispute" in held[i] for i in r.current_examples)
    assert all(i.startswith("r") for i in r.reference_examples)


def test_stable_windows_are_not_flagged() -> None:
    r = classify_windows(texts(3, 200), texts(4, 200), permutations=39)
    assert r.drifted is False and r.auc is not None and r.threshold is not None
    assert r.auc <= r.threshold and r.p_value is not None and r.p_value > 0.025


def test_large_windows_use_the_fixed_threshold() -> None:
    r = classify_windows(texts(5, 120), texts(6, 120), large_n=100, permutations=5)
    # 0.5 + 6 standard errors of a Mann-Whitney AUC at 120 a side: above 0.55
    floor = 0.5 + 6 * math.sqrt(241 / (12 * 120 * 120))
    assert r.threshold == pytest.approx(floor, abs=1e-6) and r.p_value is None
    assert r.drifted is False and "AUC > 0.724" in r.detail
    wide = classify_windows(texts(5, 3000, words=4), texts(6, 3000, words=4), large_n=100)
    assert wide.threshold == 0.55


def test_too_few_texts_give_no_verdict() -> None:
    r = classify_windows(texts(1, 49), texts(2, 400))
    assert (r.status, r.drifted, r.auc) == ("not_enough_data", None, None)
    assert r.n_reference == 49


@pytest.mark.skipif(cls._np is None, reason="numpy not installed")
def test_numpy_and_pure_python_agree() -> None:
    ref = texts(7, 150, prefix="r")
    cur = texts(8, 150, topic_share=0.2, prefix="c")
    a = classify_windows(ref, cur, permutations=9, backend="python")
    b = classify_windows(ref, cur, permutations=9, backend="numpy")
    assert a.auc == pytest.approx(b.auc, abs=1e-9)
    assert a.threshold == pytest.approx(b.threshold, abs=1e-9)
    assert (a.drifted, a.p_value) == (b.drifted, b.p_value)
    assert [t.text for t in a.current_terms] == [t.text for t in b.current_terms]
    assert (a.current_examples, a.reference_examples) == (b.current_examples, b.reference_examples)


def test_the_same_seed_gives_the_same_answer() -> None:
    ref, cur = texts(9, 100), texts(10, 100)
    a = classify_windows(ref, cur, seed=3, permutations=9, backend="python")
    b = classify_windows(ref, cur, seed=3, permutations=9, backend="python")
    assert a == b


def test_buckets_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        classify_windows(texts(1, 60), texts(2, 60), buckets=1000)


def test_without_numpy_the_pure_python_path_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "from keel.monitor.drift import classifier as c\n"
        "from tests.monitor.drift._traffic import texts\n"
        "assert c._np is None\n"
        "r = c.classify_windows(texts(1, 80), texts(2, 80, topic_share=0.5), permutations=9)\n"
        "print(r.auc, r.drifted)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    auc, drifted = out.stdout.split()
    expected = classify_windows(texts(1, 80), texts(2, 80, topic_share=0.5), permutations=9,
                                backend="python")
    assert float(auc) == expected.auc and drifted == str(expected.drifted)
    refused = subprocess.run([sys.executable, "-c", "import sys; sys.modules['numpy'] = None\n"
                              "from keel.monitor.drift import classifier as c\n"
                              "c.classify_windows([('a', 'x')] * 60, [('b', 'y')] * 60, "
                              "backend='numpy')"], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "ValueError: the numpy backend needs numpy" in refused.stderr
