"""``pii``: personal data in prompts or answers (regexes plus checksums; names via Presidio).

The regex/checksum layer (:mod:`keel.guard.pii`) stands alone and covers email, phone,
card (Luhn), iban (mod-97), ssn, ip (v4 and v6) and address (US-style). ``names: true`` adds
person names through Microsoft Presidio's analyzer, only when ``presidio-analyzer`` and its
spaCy model are already installed (keel does not depend on them and never downloads a model);
otherwise building the scanner fails with a config error saying what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from keel.guard.pii import KINDS, PiiSpan, RedactionMap, find_pii, redact_reversible
from keel.guard.scanners.base import (
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    register_scanner,
)
from keel.guard.scanners.support import BaseScanner, Options, count_kinds

PRESIDIO_MODEL = "en_core_web_lg"


class _Names:
    """Person names through Presidio, built only from what is installed."""

    def __init__(self, model: str, min_score: float) -> None:
        if importlib.util.find_spec("presidio_analyzer") is None:
            raise ScannerConfigError("names: true needs Presidio, which is not installed: "
                                     "pip install presidio-analyzer, plus its spaCy model "
                                     f"(python -m spacy download {model}); or names: false",
                                     key="names")
        if importlib.util.find_spec(model) is None:
            raise ScannerConfigError(f"the spaCy model '{model}' is not installed (keel never "
                                     f"downloads models): python -m spacy download {model}; "
                                     "or set presidio_model: to an installed one",
                                     key="presidio_model")
        presidio: Any = importlib.import_module("presidio_analyzer")
        nlp: Any = importlib.import_module("presidio_analyzer.nlp_engine")
        provider = nlp.NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
        self.engine = presidio.AnalyzerEngine(nlp_engine=provider.create_engine(),
                                              supported_languages=["en"])
        self.min_score = min_score

    def find(self, text: str) -> list[PiiSpan]:
        results = self.engine.analyze(text=text, language="en", entities=["PERSON"])
        return [PiiSpan("name", int(r.start), int(r.end)) for r in results
                if float(r.score) >= self.min_score]


@register_scanner("pii")
class PiiScanner(BaseScanner):
    """Options: ``kinds`` (default all regex kinds), ``names`` (Presidio, default false),
    ``presidio_model`` (default en_core_web_lg), ``names_min_score`` (default 0.6)."""

    options = ("kinds", "names", "presidio_model", "names_min_score")

    def configure(self, opts: Options) -> None:
        kinds = opts.strings("kinds", "[email, phone, card]", required=False) or list(KINDS)
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise ScannerConfigError(f"unknown kind '{bad[0]}'; known: {', '.join(KINDS)} "
                                     "(person names: names: true)", key="kinds")
        self.kinds = tuple(k for k in KINDS if k in kinds)
        self.names: _Names | None = None
        model = opts.string("presidio_model", PRESIDIO_MODEL, PRESIDIO_MODEL)
        min_score = opts.number("names_min_score", "0.6", 0.6, 0.0, 1.0)
        if opts.flag("names", False):
            self.names = _Names(model, min_score)
            self.cost = "moderate"

    def spans(self, text: str) -> list[PiiSpan]:
        """The PII spans in ``text`` this scanner is configured for (for redaction too)."""
        found = find_pii(text, self.kinds)
        if self.names is not None:
            for name in self.names.find(text):
                if not any(name.start < s.end and s.start < name.end for s in found):
                    found.append(name)
            found.sort(key=lambda s: s.start)
        return found

    def redact(self, text: str) -> tuple[str, RedactionMap]:
        """``text`` with this scanner's kinds replaced by numbered placeholders, and the map
        to restore them in the answer (``keel.guard.pii.restore``); it stays in memory."""
        return redact_reversible(text, spans=self.spans(text))

    def check(self, text: str, ctx: ScanContext) -> Finding:
        found = self.spans(text)
        if not found:
            return self.clean("no personal data found")
        matches = [Span(*s) for s in found]
        return self.finding(1.0, matches, f"personal data: {count_kinds(matches)}")
