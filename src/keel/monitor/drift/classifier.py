"""The domain classifier: can a model tell the reference window's texts from the current's?

Features: each text's lower-cased words, adjacent word pairs and character 4-grams within
words (padded with a space at each end), hashed into ``2**18`` buckets with CRC-32 (feature
hashing: memory bounded whatever the vocabulary) and counted once per text (binary).

Model: multinomial naive Bayes on those binary features (Laplace smoothing 1). It is chosen
over logistic regression because training is one counting pass, so five-fold cross-
validation and the shuffled-label null (up to 199 more cross-validations) stay affordable
in pure Python; on short texts it ranks as well as a linear model (Wang and Manning, 2012),
and its weights, the log-ratio of a term's smoothed frequency in each window, say directly
which terms are typical of which window. Only the ranking of the scores matters here (ROC
AUC), not NB's over-confident probabilities.

Verdict: the out-of-fold scores' ROC AUC (1.0: the windows are told apart perfectly, 0.5:
not at all). With ``large_n`` texts or more on each side, drift is AUC > 0.55, or above
0.5 + 6 Mann-Whitney standard errors when that is higher (0.577 at 1,000 a side, 0.555 at
2,000: the out-of-fold AUC of stable windows spreads 1.3-1.4 times wider than that
standard error, measured on bench/drift_calibration.py's traffic); below, the
labels are shuffled ``permutations`` times (199) and each shuffle cross-validated the same
way; the threshold is the largest null AUC (its 99.5th percentile), so a stable window is
flagged with probability at most 1 / (permutations + 1). Fewer than ``min_n`` texts on a
side: not enough data. When numpy is importable the counting and scoring are vectorised
(``bincount``); the results equal the pure-Python ones (scores are rounded to 1e-9 before
ranking, so ties break the same way).
"""

from __future__ import annotations

import importlib
import itertools
import math
import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

BUCKETS = 2 ** 18
LARGE_N = 1000
MIN_N = 50
FIXED_THRESHOLD = 0.55
AUC_NOISE_Z = 6.0
PERMUTATIONS = 199
FOLDS = 5
_SMOOTHING = 1.0
_WORD = re.compile(r"\w+")
Backend = Literal["auto", "python", "numpy"]


def _load_numpy() -> Any:
    try:
        return importlib.import_module("numpy")
    except ImportError:
        return None


_np: Any = _load_numpy()  # optional acceleration


@dataclass(frozen=True, slots=True)
class Term:
    """An n-gram typical of one window: its NB weight (positive: the current window's) and
    the number of texts holding it on each side."""

    text: str
    kind: Literal["word", "pair"]
    weight: float
    n_reference: int
    n_current: int


@dataclass(frozen=True, slots=True)
class ClassifierDrift:
    method: str
    auc: float | None
    threshold: float | None
    drifted: bool | None
    n_reference: int
    n_current: int
    status: Literal["ok", "not_enough_data"] = "ok"
    detail: str = ""
    p_value: float | None = None  # the permutation p-value, below large_n
    current_terms: list[Term] = field(default_factory=list)
    reference_terms: list[Term] = field(default_factory=list)
    current_examples: list[str] = field(default_factory=list)  # ids, surest first
    reference_examples: list[str] = field(default_factory=list)


class _Features:
    """Hashed features of a set of texts, remapped to dense ids 0 .. F-1."""

    def __init__(self, texts: Sequence[str], buckets: int) -> None:
        mask = buckets - 1
        cache: dict[str, int] = {}
        self.names: dict[int, tuple[str, str]] = {}  # bucket -> (kind, first term seen)
        dense: dict[int, int] = {}
        self.docs: list[list[int]] = []
        for text in texts:
            words = _WORD.findall(text.lower())
            grams: list[tuple[str, str]] = [("word", w) for w in words]
            grams += [("pair", f"{a} {b}") for a, b in itertools.pairwise(words)]
            for w in words:
                padded = f" {w} "
                if len(padded) <= 4:
                    grams.append(("char", padded))
                else:
                    grams += [("char", padded[i:i + 4]) for i in range(len(padded) - 3)]
            ids: set[int] = set()
            for kind, gram in grams:
                key = kind[0] + gram
                bucket = cache.get(key)
                if bucket is None:
                    bucket = zlib.crc32(key.encode()) & mask
                    cache[key] = bucket
                    self.names.setdefault(bucket, (kind, gram))
                idx = dense.get(bucket)
                if idx is None:
                    idx = dense[bucket] = len(dense)
                ids.add(idx)
            self.docs.append(sorted(ids))
        self.size = len(dense)
        self.bucket_of = [0] * self.size
        for bucket, idx in dense.items():
            self.bucket_of[idx] = bucket


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """ROC AUC of ``scores`` for the positive label 1 (Mann-Whitney, ties at half)."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum = 0.0
    i = 0
    n = len(order)
    while i < n:
        j = i
        while j + 1 < n and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            if labels[order[k]]:
                rank_sum += avg
        i = j + 1
    n_pos = sum(1 for v in labels if v)
    n_neg = n - n_pos
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


class _PythonNB:
    def __init__(self, feats: _Features, folds: list[int], k: int) -> None:
        self.docs = feats.docs
        self.size = feats.size
        self.fold_docs = [[d for d, f in enumerate(folds) if f == i] for i in range(k)]
        self.logs = [math.log(c + _SMOOTHING) for c in range(len(feats.docs) + 1)]

    def cv_scores(self, y: Sequence[int]) -> list[float]:
        t1, t0 = [0] * self.size, [0] * self.size
        n1_total = n0_total = 0
        docs, logs, size = self.docs, self.logs, self.size
        for doc, lab in zip(docs, y, strict=True):
            arr = t1 if lab else t0
            for f in doc:
                arr[f] += 1
        tot1, tot0 = sum(t1), sum(t0)
        d1_all = sum(y)
        d0_all = len(y) - d1_all
        scores = [0.0] * len(docs)
        for members in self.fold_docs:
            f1, f0 = [0] * size, [0] * size
            n1_total = n0_total = 0
            d1 = 0
            for d in members:
                doc = docs[d]
                if y[d]:
                    d1 += 1
                    n1_total += len(doc)
                    for f in doc:
                        f1[f] += 1
                else:
                    n0_total += len(doc)
                    for f in doc:
                        f0[f] += 1
            c1_docs, c0_docs = d1_all - d1, d0_all - (len(members) - d1)
            prior = math.log(max(c1_docs, 1) / max(c0_docs, 1))
            per_term = (math.log(tot0 - n0_total + _SMOOTHING * size)
                        - math.log(tot1 - n1_total + _SMOOTHING * size))
            for d in members:
                doc = docs[d]
                s = 0.0
                for f in doc:
                    s += logs[t1[f] - f1[f]] - logs[t0[f] - f0[f]]
                scores[d] = round(s + len(doc) * per_term + prior, 9)
        return scores


class _NumpyNB:
    def __init__(self, feats: _Features, folds: list[int], k: int) -> None:
        np = _np
        lengths = [len(d) for d in feats.docs]
        self.n_docs = len(feats.docs)
        self.size = feats.size
        self.ent_doc = np.repeat(np.arange(self.n_docs), lengths)
        self.ent_feat = np.fromiter((f for d in feats.docs for f in d), dtype=np.int64,
                                    count=sum(lengths))
        self.lengths = np.asarray(lengths, dtype=np.float64)
        fold_arr = np.asarray(folds)
        ent_fold = fold_arr[self.ent_doc]
        self.fold_docs = [np.flatnonzero(fold_arr == i) for i in range(k)]
        self.fold_ents = [np.flatnonzero(ent_fold == i) for i in range(k)]
        # what does not depend on the labels, counted once for every shuffle
        self.t_all = np.bincount(self.ent_feat, minlength=self.size).astype(np.float64)
        self.fold_feats = [self.ent_feat[e] for e in self.fold_ents]
        self.fold_ent_docs = [self.ent_doc[e] for e in self.fold_ents]
        self.f_all = [np.bincount(fe, minlength=self.size).astype(np.float64)
                      for fe in self.fold_feats]

    def cv_scores(self, y: Sequence[int]) -> list[float]:
        np = _np
        ya = np.asarray(y, dtype=np.float64)
        ent_y = ya[self.ent_doc]
        t1 = np.bincount(self.ent_feat, weights=ent_y, minlength=self.size)
        t0 = self.t_all - t1
        tot1, tot0 = float(t1.sum()), float(t0.sum())
        d1_all = float(ya.sum())
        d0_all = self.n_docs - d1_all
        scores = np.zeros(self.n_docs)
        for members, ents, fe, fd, f_all in zip(self.fold_docs, self.fold_ents,
                                                self.fold_feats, self.fold_ent_docs,
                                                self.f_all, strict=True):
            fy = ent_y[ents]
            f1 = np.bincount(fe, weights=fy, minlength=self.size)
            f0 = f_all - f1
            c1, c0 = t1 - f1, t0 - f0
            w = np.log(c1 + _SMOOTHING) - np.log(c0 + _SMOOTHING)
            d1 = float(ya[members].sum())
            c1_docs, c0_docs = d1_all - d1, d0_all - (len(members) - d1)
            prior = math.log(max(c1_docs, 1) / max(c0_docs, 1))
            per_term = (math.log(tot0 - float(f0.sum()) + _SMOOTHING * self.size)
                        - math.log(tot1 - float(f1.sum()) + _SMOOTHING * self.size))
            summed = np.bincount(fd, weights=w[fe], minlength=self.n_docs)
            scores[members] = summed[members] + self.lengths[members] * per_term + prior
        return [float(v) for v in np.round(scores, 9)]


def _folds(labels: Sequence[int], k: int, rng: random.Random) -> list[int]:
    """A stratified fold number for each text."""
    folds = [0] * len(labels)
    for cls in (0, 1):
        members = [i for i, v in enumerate(labels) if v == cls]
        rng.shuffle(members)
        for pos, i in enumerate(members):
            folds[i] = pos % k
    return folds


def _terms(feats: _Features, y: Sequence[int], top: int,
           min_docs: int) -> tuple[list[Term], list[Term]]:
    size = feats.size
    c1, c0 = [0] * size, [0] * size
    for doc, lab in zip(feats.docs, y, strict=True):
        arr = c1 if lab else c0
        for f in doc:
            arr[f] += 1
    n1 = sum(c1) + _SMOOTHING * size
    n0 = sum(c0) + _SMOOTHING * size
    rows: list[Term] = []
    for f in range(size):
        kind, gram = feats.names[feats.bucket_of[f]]
        if kind == "char" or c1[f] + c0[f] < min_docs:
            continue
        w = math.log((c1[f] + _SMOOTHING) / n1) - math.log((c0[f] + _SMOOTHING) / n0)
        rows.append(Term(gram, "pair" if kind == "pair" else "word", round(w, 6),
                         c0[f], c1[f]))
    current = sorted((t for t in rows if t.weight > 0),
                     key=lambda t: (-t.weight, t.text))[:top]
    reference = sorted((t for t in rows if t.weight < 0),
                       key=lambda t: (t.weight, t.text))[:top]
    return current, reference


def classify_windows(reference: Sequence[tuple[str, str]], current: Sequence[tuple[str, str]],
                     *, seed: int = 0, folds: int = FOLDS, permutations: int = PERMUTATIONS,
                     large_n: int = LARGE_N, min_n: int = MIN_N,
                     fixed_threshold: float = FIXED_THRESHOLD, buckets: int = BUCKETS,
                     top_terms: int = 15, examples: int = 5, backend: Backend = "auto",
                     ) -> ClassifierDrift:
    """Train the classifier to tell ``reference`` from ``current`` (each a sequence of
    ``(id, text)``) and say whether it can, with the terms and examples that tell them
    apart. Deterministic for a given ``seed``."""
    if buckets & (buckets - 1):
        raise ValueError("buckets must be a power of two")
    n_ref, n_cur = len(reference), len(current)
    large = min(n_ref, n_cur) >= large_n
    method = "domain classifier (hashed n-grams, naive Bayes, cross-validated ROC AUC)"
    if min(n_ref, n_cur) < min_n:
        return ClassifierDrift(method, None, fixed_threshold if large else None, None,
                               n_ref, n_cur, "not_enough_data",
                               f"not enough data: fewer than {min_n} texts on a side")
    use_numpy = backend == "numpy" or (backend == "auto" and _np is not None)
    if use_numpy and _np is None:
        raise ValueError("the numpy backend needs numpy (pip install keel[semantic])")
    ids = [i for i, _ in reference] + [i for i, _ in current]
    labels = [0] * n_ref + [1] * n_cur
    feats = _Features([t for _, t in reference] + [t for _, t in current], buckets)
    rng = random.Random(seed)
    fold_of = _folds(labels, folds, rng)
    model = (_NumpyNB if use_numpy else _PythonNB)(feats, fold_of, folds)
    scores = model.cv_scores(labels)
    auc = roc_auc(scores, labels)
    p_value: float | None = None
    if large:
        se = math.sqrt((n_ref + n_cur + 1) / (12.0 * n_ref * n_cur))
        threshold = max(fixed_threshold, 0.5 + AUC_NOISE_Z * se)
        detail = f"{folds}-fold; drift when AUC > {threshold:.3f}"
    else:
        null: list[float] = []
        shuffled = list(labels)
        for _ in range(permutations):
            rng.shuffle(shuffled)
            null.append(roc_auc(model.cv_scores(shuffled), shuffled))
        threshold = max(null)
        p_value = (1 + sum(1 for v in null if v >= auc)) / (permutations + 1)
        detail = (f"{folds}-fold; threshold: the largest AUC of {permutations} shuffled-label "
                  "runs")
    current_terms, reference_terms = _terms(feats, labels, top_terms, min_docs=3)
    ref_order = sorted(range(n_ref), key=lambda i: (scores[i], i))
    cur_order = sorted(range(n_ref, n_ref + n_cur), key=lambda i: (-scores[i], i))
    return ClassifierDrift(method, round(auc, 6), round(threshold, 6), auc > threshold,
                           n_ref, n_cur, detail=detail, p_value=p_value,
                           current_terms=current_terms, reference_terms=reference_terms,
                           current_examples=[ids[i] for i in cur_order[:examples]],
                           reference_examples=[ids[i] for i in ref_order[:examples]])
