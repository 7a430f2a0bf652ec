"""The ``injection`` scanner: its options, the signals of a text (phrase rules on the
normalised text, then encoded payloads), their combined score, and an optional classifier
backend's opinion (the higher of the two is reported)."""

from __future__ import annotations

from collections.abc import Iterable

from keel.guard.scanners.base import (
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    register_scanner,
)
from keel.guard.scanners.injection.classifiers import (
    CLASSIFIERS,
    InjectionClassifier,
    injection_classifier_types,
)
from keel.guard.scanners.injection.encoded import encoded_signals
from keel.guard.scanners.injection.normalize import Normalized
from keel.guard.scanners.injection.rules import Signal, phrase_signals
from keel.guard.scanners.support import BaseScanner, Options
from keel.plugins import PluginError

CATEGORIES = ("override", "roleplay", "exfiltration", "encoded", "delimiter")


def combine(signals: Iterable[Signal]) -> float:
    """Strongest signal per category, combined across categories as independent evidence."""
    best: dict[str, float] = {}
    for s in signals:
        best[s.category] = max(best.get(s.category, 0.0), s.weight)
    miss = 1.0
    for w in best.values():
        miss *= 1.0 - w
    return 1.0 - miss


@register_scanner("injection")
class InjectionScanner(BaseScanner):
    """Options: ``threshold`` (default 0.7), ``categories`` (default all), ``classifier``
    (``{type: NAME, ...options}`` of a registered classifier backend)."""

    options = ("categories", "classifier")
    stages = ("input",)
    uses_threshold = True
    default_threshold = 0.7

    def configure(self, opts: Options) -> None:
        cats = opts.strings("categories", "[override, roleplay, exfiltration]", required=False)
        bad = [c for c in cats if c not in CATEGORIES]
        if bad:
            raise ScannerConfigError(f"unknown category '{bad[0]}'; known: "
                                     f"{', '.join(CATEGORIES)}", key="categories")
        self.categories = frozenset(cats or CATEGORIES)
        self.classifier: InjectionClassifier | None = None
        spec = opts.mapping("classifier", "{type: my-local-model}", required=False)
        if spec is not None:
            kind = spec.get("type")
            try:
                factory = CLASSIFIERS.get(kind) if isinstance(kind, str) and kind else None
            except PluginError as exc:
                raise ScannerConfigError(exc.message, key="classifier.type") from None
            if factory is None:
                known = ", ".join(injection_classifier_types()) or "none registered"
                raise ScannerConfigError(
                    f"type must name a registered classifier (register_injection_classifier,"
                    f" or the keel.injection_classifiers entry point group); known: {known}; "
                    "e.g. classifier: {type: my-local-model}", key="classifier")
            try:
                self.classifier = factory({k: v for k, v in spec.items() if k != "type"})
            except ScannerConfigError as exc:
                raise ScannerConfigError(exc.detail, key=f"classifier.{exc.key or 'type'}") \
                    from None
            except Exception as exc:
                raise ScannerConfigError(f"classifier '{kind}' could not be built: "
                                         f"{type(exc).__name__}: {exc}", key="classifier") \
                    from exc
            self.cost = "moderate"

    def signals(self, text: str) -> tuple[list[Signal], Normalized]:
        norm = Normalized(text)
        signals = phrase_signals(norm.text, self.categories)
        if "encoded" in self.categories:
            signals.extend(encoded_signals(text, norm))
        return signals, norm

    def check(self, text: str, ctx: ScanContext) -> Finding:
        signals, norm = self.signals(text)
        score = combine(signals)
        matches = []
        for s in signals:
            start, end = (s.start, s.end) if s.original else (norm.start(s.start),
                                                              norm.end(s.end))
            matches.append(Span(f"{s.category}:{s.kind}", start, end))
        matches.sort(key=lambda m: m.start)
        error = None
        model_score: float | None = None
        if self.classifier is not None:
            try:
                model_score = min(1.0, max(0.0, float(self.classifier.classify(text))))
            except Exception as exc:
                error = f"classifier failed: {type(exc).__name__}"
            if model_score is not None and model_score > score:
                score = model_score
                matches.append(Span("classifier", 0, len(text)))
        if not signals and not model_score:
            finding = self.clean("no injection signals")
        else:
            kinds = sorted({f"{s.category} ({s.kind}, {s.weight:g})" for s in signals})
            why = "signals: " + "; ".join(kinds) if kinds else "no heuristic signals"
            if model_score is not None:
                why += f"; classifier {model_score:.2f}"
            finding = self.finding(score, matches, why)
        if error is not None:
            return Finding(finding.scanner, finding.score, finding.triggered, finding.matches,
                           finding.explanation, error)
        return finding
