"""What the scanners share: strict option reading and a base class.

Options are read strictly: an unknown key is a config error (a typo never becomes a silently
ignored setting), and every message names the key and shows a valid example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from keel.guard.scanners.base import (
    EMPTY_CONTEXT,
    Cost,
    Finding,
    ScanContext,
    ScannerConfigError,
    Span,
    Stage,
)
from keel.plugins import StrictOptions

COMMON = ("type", "name", "stage")


class Options(StrictOptions):
    """The options of one scanner entry; every getter raises ScannerConfigError naming the key."""

    error = ScannerConfigError
    common = COMMON
    name_help = "a non-empty string naming this scanner in verdicts; e.g. name: {type}-strict"
    range_example = True

    def string(self, key: str, example: str, default: str | None = None) -> str:
        value = self.config.get(key, default)
        if not isinstance(value, str) or not value:
            what = "required" if value is None else f"must be a non-empty string, got {value!r}"
            raise ScannerConfigError(f"{what}; e.g. {key}: {example}", key=key)
        return value

    def choice(self, key: str, choices: Iterable[str], default: str) -> str:
        options = tuple(choices)
        value = self.config.get(key, default)
        if value not in options:
            raise ScannerConfigError(f"must be one of {', '.join(options)}, got {value!r}",
                                     key=key)
        return str(value)

    def whole(self, key: str, example: str, default: int | None = None,
              minimum: int = 0) -> int:
        value = self.config.get(key, default)
        if value is None:
            raise ScannerConfigError(f"required; e.g. {key}: {example}", key=key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ScannerConfigError(f"must be a whole number >= {minimum}, got {value!r}; "
                                     f"e.g. {key}: {example}", key=key)
        return value

    def strings(self, key: str, example: str, required: bool = True) -> list[str]:
        value = self.config.get(key)
        if value is None and not required:
            return []
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v for v in value)):
            what = ("required" if value is None
                    else f"must be a non-empty list of non-empty strings, got {value!r}")
            raise ScannerConfigError(f"{what}; e.g. {key}: {example}", key=key)
        return list(value)

    def mapping(self, key: str, example: str, required: bool = True) -> dict[str, Any] | None:
        value = self.config.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, dict) or not value:
            what = "required" if value is None else f"must be a non-empty mapping, got {value!r}"
            raise ScannerConfigError(f"{what}; e.g. {key}: {example}", key=key)
        return value


class BaseScanner(ABC):
    """Base for the built-ins: options, ``threshold``, ``stage`` and turning a crash into an
    error finding.

    Subclasses set ``stages`` (the stages the type can run at; its default stage is
    ``"both"`` when it can run at both, and the config's ``stage:`` may narrow it), ``cost``
    and ``options``, and implement :meth:`configure` and :meth:`check`. ``threshold`` (0..1,
    default ``default_threshold``) applies to scanners whose score is graded; the others set
    ``uses_threshold = False`` (their score is 0 or 1) and reject the option.
    """

    options: ClassVar[tuple[str, ...]] = ()
    stages: ClassVar[tuple[str, ...]] = ("input", "output")
    uses_threshold: ClassVar[bool] = False
    default_threshold: ClassVar[float] = 0.5
    cost: Cost = "cheap"

    def __init__(self, config: dict[str, Any]) -> None:
        allowed = (*self.options, "threshold") if self.uses_threshold else self.options
        opts = Options(config, allowed)
        self.type_name = opts.type
        self.name = opts.name
        self.threshold = 0.5
        if self.uses_threshold:
            self.threshold = opts.number("threshold", "0.7", self.default_threshold, 0.0, 1.0)
        natural: Stage = "both" if len(self.stages) == 2 else (
            "input" if self.stages == ("input",) else "output")
        choices = ("both", *self.stages) if natural == "both" else (natural,)
        self.stage: Stage = natural
        if opts.has("stage"):
            picked = opts.choice("stage", choices, natural)
            self.stage = "input" if picked == "input" else (
                "output" if picked == "output" else "both")
        self.configure(opts)

    @abstractmethod
    def configure(self, opts: Options) -> None: ...

    @abstractmethod
    def check(self, text: str, ctx: ScanContext) -> Finding: ...

    def scan(self, text: str, ctx: ScanContext = EMPTY_CONTEXT) -> Finding:
        try:
            return self.check(text, ctx)
        except Exception as exc:  # a scanner bug never passes silently, nor crashes the call
            return Finding(self.name, 0.0, False, [],
                           f"{self.name} could not scan this text",
                           error=f"{type(exc).__name__} in scanner '{self.name}'")

    def clean(self, why: str = "nothing found") -> Finding:
        return Finding(self.name, 0.0, False, [], why)

    def finding(self, score: float, matches: list[Span], why: str) -> Finding:
        """A Finding whose ``triggered`` is ``score >= threshold`` (and score > 0)."""
        score = min(1.0, max(0.0, score))
        triggered = score > 0.0 and score >= self.threshold
        if self.uses_threshold and score not in (0.0, 1.0):
            why = f"{why} (score {score:.2f}, threshold {self.threshold:g})"
        return Finding(self.name, score, triggered, matches, why)


def count_kinds(matches: Iterable[Span]) -> str:
    """``"2 email, 1 card"``: a summary of spans by kind that carries no matched text."""
    counts: dict[str, int] = {}
    for m in matches:
        counts[m.kind] = counts.get(m.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())
