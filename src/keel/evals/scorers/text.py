"""Text scorers: equals, contains, contains-any, contains-all, regex, starts-with, length.

String options may use ``{{variable}}`` (and ``{{expected}}``), filled per case. Matching
is case-insensitive where the option ``case_sensitive`` says so (default noted per scorer).
"""

from __future__ import annotations

import re

from keel.evals.scorers.base import Score, ScoreInput, ScorerConfigError, register_scorer
from keel.evals.scorers.support import BaseScorer, Options, Template, clip, fill


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


@register_scorer("equals")
class Equals(BaseScorer):
    """The answer equals ``value`` (``case_sensitive`` default true, ``strip`` default true)."""

    options = ("value", "case_sensitive", "strip")

    def configure(self, opts: Options) -> None:
        self.value = Template(opts.string("value", '"{{expected}}"'))
        self.case_sensitive = opts.flag("case_sensitive", True)
        self.strip = opts.flag("strip", True)

    def evaluate(self, inp: ScoreInput) -> Score:
        want, got = fill(self.value, inp), inp.output_text
        if self.strip:
            want, got = want.strip(), got.strip()
        ok = _fold(want, self.case_sensitive) == _fold(got, self.case_sensitive)
        return self.check(ok, f"answer equals {clip(want)}",
                          f"answer {clip(got)} does not equal {clip(want)}")


@register_scorer("contains")
class Contains(BaseScorer):
    """The answer contains ``value`` (``case_sensitive`` default false)."""

    options = ("value", "case_sensitive")

    def configure(self, opts: Options) -> None:
        self.value = Template(opts.string("value", '"{{expected}}"'))
        self.case_sensitive = opts.flag("case_sensitive", False)

    def evaluate(self, inp: ScoreInput) -> Score:
        want = fill(self.value, inp)
        ok = _fold(want, self.case_sensitive) in _fold(inp.output_text, self.case_sensitive)
        return self.check(ok, f"answer contains {clip(want)}",
                          f"answer does not contain {clip(want)}")


class _ContainsMany(BaseScorer):
    options = ("values", "case_sensitive")

    def configure(self, opts: Options) -> None:
        self.values = [Template(v) for v in opts.strings("values", '["Paris", "{{city}}"]')]
        self.case_sensitive = opts.flag("case_sensitive", False)

    def found(self, inp: ScoreInput) -> tuple[list[str], list[str]]:
        text = _fold(inp.output_text, self.case_sensitive)
        hit: list[str] = []
        miss: list[str] = []
        for template in self.values:
            want = fill(template, inp)
            (hit if _fold(want, self.case_sensitive) in text else miss).append(want)
        return hit, miss


@register_scorer("contains-any")
class ContainsAny(_ContainsMany):
    """The answer contains at least one of ``values`` (``case_sensitive`` default false)."""

    def evaluate(self, inp: ScoreInput) -> Score:
        hit, miss = self.found(inp)
        return self.check(bool(hit), f"answer contains {clip(hit[0]) if hit else ''}",
                          f"answer contains none of {', '.join(clip(m, 30) for m in miss)}")


@register_scorer("contains-all")
class ContainsAll(_ContainsMany):
    """The answer contains every one of ``values``; the value is the fraction found, so a
    ``threshold`` below 1 accepts partial matches (``case_sensitive`` default false)."""

    def evaluate(self, inp: ScoreInput) -> Score:
        hit, miss = self.found(inp)
        value = len(hit) / (len(hit) + len(miss))
        why = (f"answer contains all {len(hit)} values" if not miss else
               f"answer is missing {len(miss)} of {len(hit) + len(miss)}: "
               f"{', '.join(clip(m, 30) for m in miss)}")
        return self.verdict(value, why)


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE,
          "a": re.ASCII}


@register_scorer("regex")
class Regex(BaseScorer):
    """The answer matches ``pattern`` anywhere (``re.search``); ``flags`` is a string of
    ``i`` (ignore case), ``m`` (multiline), ``s`` (dot matches newline), ``x`` (verbose),
    ``a`` (ASCII). Variables in the pattern are inserted literally (escaped)."""

    options = ("pattern", "flags")

    def configure(self, opts: Options) -> None:
        self.pattern = Template(opts.string("pattern", r'"\\d{4}-\\d{2}-\\d{2}"'))
        flags = opts.string("flags", '"i"', default="")
        bad = sorted(set(flags) - set(_FLAGS))
        if bad:
            raise ScorerConfigError(f"unknown flag(s) {''.join(bad)!r}; use letters from "
                                    f"{''.join(_FLAGS)!r}", key="flags")
        self.flags = 0
        for letter in flags:
            self.flags |= _FLAGS[letter]
        self.compiled: re.Pattern[str] | None = None
        try:
            # With variables, check the shape now (placeholders as literals); compile per case.
            probe = re.compile(self.pattern.render(dict.fromkeys(self.pattern.names, "x")),
                               self.flags)
        except re.error as exc:
            raise ScorerConfigError(f"not a valid regular expression: {exc}",
                                    key="pattern") from None
        if self.pattern.static:
            self.compiled = probe

    def evaluate(self, inp: ScoreInput) -> Score:
        compiled = self.compiled
        if compiled is None:
            rendered = fill(self.pattern, inp, escape=True)
            try:
                compiled = re.compile(rendered, self.flags)
            except re.error as exc:
                return Score(0.0, None, "could not score: the rendered pattern is invalid",
                             error=f"pattern /{rendered}/ is not a valid regular expression: "
                                   f"{exc}")
        match = compiled.search(inp.output_text)
        if match:
            return self.check(True, f"matched {clip(match.group(0))} at {match.start()}", "")
        return self.check(False, "", f"answer does not match /{compiled.pattern}/")


@register_scorer("starts-with")
class StartsWith(BaseScorer):
    """The answer starts with ``value`` (leading whitespace ignored; ``case_sensitive``
    default true)."""

    options = ("value", "case_sensitive")

    def configure(self, opts: Options) -> None:
        self.value = Template(opts.string("value", '"Answer:"'))
        self.case_sensitive = opts.flag("case_sensitive", True)

    def evaluate(self, inp: ScoreInput) -> Score:
        want, got = fill(self.value, inp), inp.output_text.lstrip()
        ok = _fold(got, self.case_sensitive).startswith(_fold(want, self.case_sensitive))
        return self.check(ok, f"answer starts with {clip(want)}",
                          f"answer starts with {clip(got[:len(want) + 10])}, not {clip(want)}")


@register_scorer("length")
class Length(BaseScorer):
    """The answer's length is within bounds: ``min_chars``/``max_chars`` and/or
    ``min_words``/``max_words`` (words are whitespace-separated). At least one is required."""

    options = ("min_chars", "max_chars", "min_words", "max_words")

    def configure(self, opts: Options) -> None:
        self.bounds = {key: opts.count(key) for key in self.options}
        if all(v is None for v in self.bounds.values()):
            raise ScorerConfigError("set at least one of min_chars, max_chars, min_words, "
                                    "max_words; e.g. max_words: 50", key="max_words")
        for unit in ("chars", "words"):
            lo, hi = self.bounds[f"min_{unit}"], self.bounds[f"max_{unit}"]
            if lo is not None and hi is not None and lo > hi:
                raise ScorerConfigError(f"min_{unit} ({lo}) is above max_{unit} ({hi})",
                                        key=f"min_{unit}")

    def evaluate(self, inp: ScoreInput) -> Score:
        measured = {"chars": len(inp.output_text), "words": len(inp.output_text.split())}
        problems = []
        for unit, n in measured.items():
            lo, hi = self.bounds[f"min_{unit}"], self.bounds[f"max_{unit}"]
            if lo is not None and n < lo:
                problems.append(f"{n} {unit} is below min_{unit} {lo}")
            if hi is not None and n > hi:
                problems.append(f"{n} {unit} is above max_{unit} {hi}")
        return self.check(not problems,
                          f"{measured['chars']} chars, {measured['words']} words: within bounds",
                          "; ".join(problems))
