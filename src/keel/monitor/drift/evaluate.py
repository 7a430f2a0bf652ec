"""One drift evaluation: every descriptor plus the domain classifier, with one false-alarm
budget.

``alpha`` (0.01) is the chance that a stable pair of windows is flagged at all. Half of it
goes to the classifier (its shuffled-label threshold: 199 permutations), half is shared
among the descriptors' tests with a p-value (Bonferroni: each KS or chi-square test
rejects at ``alpha / 2 / m``, m the number of descriptors compared). The distance methods
used from ``large_n`` rows a side (Wasserstein, Jensen-Shannon, AUC > 0.55) have fixed
thresholds with a noise floor for the sample size; their false-alarm rate on stable
samples is measured in bench/drift_calibration.py rather than bounded.

``oov_share`` is added here: the vocabulary is built from the even-numbered reference
texts, the odd-numbered ones are the reference sample for it (a window's own vocabulary
would leave it no unknown word), and every current text is measured against it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from keel.monitor.drift.classifier import (
    FIXED_THRESHOLD,
    Backend,
    ClassifierDrift,
    classify_windows,
)
from keel.monitor.drift.compare import (
    JS_THRESHOLD,
    LARGE_N,
    MIN_N,
    PSI_THRESHOLD,
    WASSERSTEIN_THRESHOLD,
    DescriptorDrift,
    compare_categorical,
    compare_numeric,
)
from keel.monitor.drift.descriptors import Described, Value, oov_share, vocabulary


@dataclass(frozen=True, slots=True)
class DriftConfig:
    alpha: float = 0.01
    large_n: int = LARGE_N
    min_n: int = MIN_N
    wasserstein_threshold: float = WASSERSTEIN_THRESHOLD
    js_threshold: float = JS_THRESHOLD
    psi_threshold: float = PSI_THRESHOLD
    use_psi: bool = False  # PSI for every descriptor instead of the size-based choice
    classifier: bool = True
    classifier_text: Literal["request", "response", "both"] = "request"
    classifier_min_n: int = 50
    auc_threshold: float = FIXED_THRESHOLD
    permutations: int | None = None  # None: the fewest that fit alpha / 2 (199 at 0.01)
    seed: int = 0
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must lie between 0 and 1")


@dataclass(frozen=True, slots=True)
class DriftReport:
    descriptors: list[DescriptorDrift]
    classifier: ClassifierDrift | None
    p_threshold: float  # what each KS / chi-square test rejected at
    n_reference: int
    n_current: int
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool | None:
        """True when anything drifted; None when nothing had enough data for a verdict."""
        verdicts = [d.drifted for d in self.descriptors]
        if self.classifier is not None:
            verdicts.append(self.classifier.drifted)
        known = [v for v in verdicts if v is not None]
        return any(known) if known else None

    @property
    def drifted_names(self) -> list[str]:
        names = [d.name for d in self.descriptors if d.drifted]
        if self.classifier is not None and self.classifier.drifted:
            names.append("texts")
        return names


def _kind(values: Sequence[Value]) -> Literal["numeric", "categorical", "bag"] | None:
    for v in values:
        if isinstance(v, tuple):
            return "bag"
        if isinstance(v, str):
            return "categorical"
        if isinstance(v, int | float):
            return "numeric"
    return None


def _flatten(values: Sequence[Value]) -> list[str]:
    out: list[str] = []
    for v in values:
        if isinstance(v, tuple):
            out.extend(v)
    return out


def _text(row: Described, which: str) -> str:
    if which == "request":
        return row.text
    if which == "response":
        return row.response
    return f"{row.text}\n{row.response}"


def evaluate(reference: Sequence[Described], current: Sequence[Described],
             config: DriftConfig | None = None) -> DriftReport:
    """Compare two windows of described traces (see the module doc)."""
    cfg = config or DriftConfig()
    names: list[str] = []
    for row in (*reference, *current):
        for name in row.values:
            if name not in names:
                names.append(name)
    vocab = vocabulary(r.text for r in reference[0::2])
    oov_ref = [oov_share(r.text, vocab) for r in reference[1::2]]
    oov_cur = [oov_share(r.text, vocab) for r in current]
    columns: list[tuple[str, Sequence[Value], Sequence[Value]]] = [
        (n, [r.values.get(n) for r in reference], [r.values.get(n) for r in current])
        for n in names]
    columns.append(("oov_share", oov_ref, oov_cur))
    p_threshold = cfg.alpha / 2.0 / len(columns)
    results: list[DescriptorDrift] = []
    notes: list[str] = []
    for name, ref, cur in columns:
        kind = _kind([*ref, *cur])
        if kind is None:
            notes.append(f"{name}: no values on either side")
            continue
        if kind == "numeric":
            results.append(compare_numeric(
                name, [v if isinstance(v, int | float) else None for v in ref],
                [v if isinstance(v, int | float) else None for v in cur],
                method="psi" if cfg.use_psi else None, large_n=cfg.large_n, min_n=cfg.min_n,
                p_threshold=p_threshold, wasserstein_threshold=cfg.wasserstein_threshold,
                psi_threshold=cfg.psi_threshold))
            continue
        cats_ref = _flatten(ref) if kind == "bag" else \
            [v if isinstance(v, str) else None for v in ref]
        cats_cur = _flatten(cur) if kind == "bag" else \
            [v if isinstance(v, str) else None for v in cur]
        results.append(compare_categorical(
            name, cats_ref, cats_cur, method="psi" if cfg.use_psi else None,
            large_n=cfg.large_n, min_n=cfg.min_n, p_threshold=p_threshold,
            js_threshold=cfg.js_threshold, psi_threshold=cfg.psi_threshold))
    classifier: ClassifierDrift | None = None
    if cfg.classifier:
        permutations = cfg.permutations or math.ceil(2.0 / cfg.alpha) - 1
        which = cfg.classifier_text
        classifier = classify_windows(
            [(r.id, _text(r, which)) for r in reference],
            [(r.id, _text(r, which)) for r in current], seed=cfg.seed,
            permutations=permutations, large_n=cfg.large_n, min_n=cfg.classifier_min_n,
            fixed_threshold=cfg.auc_threshold, backend=cfg.backend)
    return DriftReport(results, classifier, p_threshold, len(reference), len(current), notes)
