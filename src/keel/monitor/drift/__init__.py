"""Drift detection: does the current window of traffic look like the reference window?

A pure computation (no I/O, no store): callers hand in samples, bounded with
:class:`Reservoir`, of traces described with :func:`describe`, and :func:`evaluate`
compares them per descriptor (:mod:`.compare`: KS / chi-square on small samples,
Wasserstein / Jensen-Shannon on large ones, PSI on request) and on the texts themselves
(:mod:`.classifier`: a domain classifier's cross-validated ROC AUC, with the terms and
examples that tell the windows apart). Standard library only; numpy, when importable,
speeds up the classifier.

Modules: ``_special`` (Kolmogorov and chi-square tails), ``compare``, ``classifier``,
``descriptors``, ``sampling``, ``evaluate``.
"""

from keel.monitor.drift.classifier import ClassifierDrift, Term, classify_windows, roc_auc
from keel.monitor.drift.compare import DescriptorDrift, compare_categorical, compare_numeric
from keel.monitor.drift.descriptors import (
    Described,
    describe,
    is_refusal,
    language,
    oov_share,
    vocabulary,
)
from keel.monitor.drift.evaluate import DriftConfig, DriftReport, evaluate
from keel.monitor.drift.sampling import Reservoir

__all__ = [
    "ClassifierDrift",
    "Described",
    "DescriptorDrift",
    "DriftConfig",
    "DriftReport",
    "Reservoir",
    "Term",
    "classify_windows",
    "compare_categorical",
    "compare_numeric",
    "describe",
    "evaluate",
    "is_refusal",
    "language",
    "oov_share",
    "roc_auc",
    "vocabulary",
]
