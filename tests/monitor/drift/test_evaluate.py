"""One evaluation: every descriptor and the classifier, one false-alarm budget."""

import random

import pytest

from keel.monitor.drift import Described, DriftConfig, evaluate
from tests.monitor.drift._traffic import texts


def _window(seed: int, n: int, *, scale: float = 1.0, topic: float = 0.0) -> list[Described]:
    rng = random.Random(seed + 1000)
    out = []
    for i, text in texts(seed, n, topic_share=topic):
        out.append(Described(f"{seed}-{i}", text, "ok", {
            "latency_ms": rng.lognormvariate(6.0, 0.4) * scale,
            "judge_score": rng.choice((1.0, 2.0, 3.0, 4.0, 5.0)),
            "refusal": "yes" if rng.random() < 0.05 else "no",
            "tool_calls": tuple(rng.choice(["search", "lookup"]) for _ in range(rng.randint(0, 2)))
            or ("(none)",),
            "guardrail_hit": None,
        }))
    return out


def test_stable_windows_raise_no_alarm_and_every_descriptor_is_reported() -> None:
    cfg = DriftConfig(permutations=39)
    report = evaluate(_window(1, 200), _window(2, 200), cfg)
    assert report.drifted is False and report.drifted_names == []
    names = [d.name for d in report.descriptors]
    assert names == ["latency_ms", "judge_score", "refusal", "tool_calls", "oov_share"]
    assert report.notes == ["guardrail_hit: no values on either side"]
    # Bonferroni: half of alpha shared by the five descriptors compared (and the empty one)
    assert report.p_threshold == pytest.approx(0.01 / 2 / 6)
    assert all(d.threshold == report.p_threshold for d in report.descriptors)
    oov = report.descriptors[-1]
    assert (oov.method, oov.n_reference, oov.n_current) == ("ks", 100, 200)
    tools = report.descriptors[3]
    assert tools.kind == "categorical" and tools.n_reference > 200  # counted per call


def test_a_latency_shift_and_a_new_topic_are_named() -> None:
    report = evaluate(_window(3, 300), _window(4, 300, scale=1.5, topic=0.3),
                      DriftConfig(permutations=39))
    assert report.drifted is True
    assert "latency_ms" in report.drifted_names and "texts" in report.drifted_names
    assert "judge_score" not in report.drifted_names
    assert report.classifier is not None
    assert "refund" in {t.text for t in report.classifier.current_terms}


def test_too_little_data_gives_no_verdict_rather_than_an_alarm() -> None:
    report = evaluate(_window(5, 20), _window(6, 20, scale=3.0))
    assert report.drifted is None
    assert all(d.status == "not_enough_data" for d in report.descriptors)
    assert report.classifier is not None and report.classifier.status == "not_enough_data"


def test_psi_can_replace_the_size_based_choice() -> None:
    report = evaluate(_window(7, 100), _window(8, 100), DriftConfig(use_psi=True,
                                                                    classifier=False))
    assert {d.method for d in report.descriptors} == {"psi"}
    assert report.classifier is None


def test_the_default_permutations_fit_half_the_budget() -> None:
    report = evaluate(_window(9, 60), _window(10, 60), DriftConfig(alpha=0.2))
    assert report.classifier is not None and "9 shuffled-label" in report.classifier.detail
    with pytest.raises(ValueError):
        DriftConfig(alpha=0.0)
