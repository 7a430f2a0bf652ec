"""Helpers the scorers share: reading options strictly, filling ``{{var}}`` templates
(``keel.placeholders``) from a case, a base class.

Options are read strictly: an unknown key is a config error (a typo never turns into a
silently ignored setting), and every message names the key and shows a valid example.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from keel.evals.scorers.base import Score, ScoreInput, ScorerConfigError
from keel.placeholders import MissingVariable, Template
from keel.plugins import StrictOptions

__all__ = ["COMMON", "BaseScorer", "MissingVariable", "Options", "Template", "clip", "fill"]

COMMON = ("type", "name")


class Options(StrictOptions):
    """The options of one scorer entry; every getter raises ScorerConfigError naming the key."""

    error = ScorerConfigError
    common = COMMON
    name_help = "a non-empty string naming this scorer in reports"

    def string(self, key: str, example: str, default: str | None = None) -> str:
        value = self.config.get(key, default)
        if not isinstance(value, str):
            what = "required" if value is None else f"must be a string, got {value!r}"
            raise ScorerConfigError(f"{what}; e.g. {key}: {example}", key=key)
        return value

    def count(self, key: str) -> int | None:
        value = self.config.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScorerConfigError(f"must be a whole number >= 0, got {value!r}", key=key)
        return value

    def strings(self, key: str, example: str) -> list[str]:
        value = self.config.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            what = "required" if value is None else f"must be a non-empty list of strings, " \
                                                    f"got {value!r}"
            raise ScorerConfigError(f"{what}; e.g. {key}: {example}", key=key)
        return list(value)

    def mapping(self, key: str, example: str, required: bool = True) -> dict[str, Any] | None:
        value = self.config.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            what = "required" if value is None else f"must be a mapping, got {value!r}"
            raise ScorerConfigError(f"{what}; e.g. {key}: {example}", key=key)
        return value


def fill(template: Template, inp: ScoreInput, escape: bool = False) -> str:
    """A scorer option's template filled for one case (``escape``: each inserted text
    escaped for a regular expression).

    Names come from the case's ``variables`` plus ``expected`` (the case's expected output,
    which wins over a variable of that name when set); a name the case lacks raises
    :class:`MissingVariable`, which :class:`BaseScorer` turns into an error score.
    """
    if template.static:
        return template.text
    values = dict(inp.variables)
    if inp.expected is not None:
        values["expected"] = inp.expected
    return template.render(values, re.escape if escape else None)


def clip(text: str, limit: int = 60) -> str:
    """A short quoted excerpt for explanations."""
    text = text.replace("\n", "\\n")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class BaseScorer(ABC):
    """Base for the built-ins: options, ``threshold`` and turning missing variables into errors.

    Subclasses implement :meth:`evaluate` (synchronous; the deterministic scorers do no I/O).
    ``threshold`` (0..1, default ``default_threshold``) applies to scorers whose value is a
    0..1 score; those that report a raw measure set ``uses_threshold = False`` and reject it.
    """

    options: ClassVar[tuple[str, ...]] = ()
    uses_threshold: ClassVar[bool] = True
    default_threshold: ClassVar[float] = 1.0

    def __init__(self, config: dict[str, Any]) -> None:
        allowed = (*self.options, "threshold") if self.uses_threshold else self.options
        opts = Options(config, allowed)
        self.type_name = opts.type
        self.name = opts.name
        self.threshold = self.default_threshold
        if self.uses_threshold:
            self.threshold = opts.number("threshold", "0.8", self.default_threshold, 0.0, 1.0)
        self.configure(opts)

    @abstractmethod
    def configure(self, opts: Options) -> None: ...

    @abstractmethod
    def evaluate(self, inp: ScoreInput) -> Score: ...

    async def score(self, inp: ScoreInput) -> Score:
        try:
            return self.evaluate(inp)
        except MissingVariable as exc:
            have = ", ".join(exc.available) or "none"
            return Score(0.0, None, f"could not score: variable '{exc.name}' is not set",
                         error=f"missing variable '{exc.name}' for scorer '{self.name}' "
                               f"(this case has: {have})")

    def verdict(self, value: float, why: str) -> Score:
        """A Score whose ``passed`` is ``value >= threshold``; ``why`` explains the value."""
        passed = value >= self.threshold
        if value not in (0.0, 1.0):
            why = f"{why} (score {value:.2f}, threshold {self.threshold:g})"
        return Score(value, passed, why)

    def check(self, ok: bool, why_pass: str, why_fail: str) -> Score:
        return self.verdict(1.0 if ok else 0.0, why_pass if ok else why_fail)
