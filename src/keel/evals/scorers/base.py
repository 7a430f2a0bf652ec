"""Scorer types and the scorer registry.

A scorer turns one case's answer into a :class:`Score`. Scorer *types* (``contains``,
``json-schema``, ...) are names in the :data:`SCORERS` registry (:mod:`keel.plugins`): the
built-ins register with :func:`register_scorer`, an installed distribution adds a type through
the ``keel.scorers`` entry point group (name: the type; object: the factory, a callable taking
the entry's config mapping and returning a :class:`Scorer`). :func:`build_scorer` turns one
entry of an eval file's ``scorers:`` list into a ready scorer, and reports a bad entry as a
:class:`ScorerConfigError` naming the entry, the key and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from keel.plugins import FactoryRegistry, LocatedConfigError


@dataclass(frozen=True, slots=True)
class Score:
    value: float  # 0..1 for pass/fail-like scorers; raw measure otherwise
    passed: bool | None  # against the scorer's threshold; None when it does not apply
    explanation: str  # short, human: why it passed or failed
    error: str | None = None  # set when the scorer could not score (never silently passed)
    # the error without what differs from case to case (a quoted reply), so a run's summary
    # counts alike errors together; None: ``error`` itself
    error_kind: str | None = None


class LLMError(Exception):
    """A model call made by a scorer failed (after the runner's retries)."""


class LLM(Protocol):
    """Model calls for model-graded scorers. The runner's implementation goes through the
    gateway (traced, costed, under the suite's feature) and through the eval result cache."""

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion body for an OpenAI-format request body; raises LLMError."""
        ...

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """One vector per text; raises LLMError."""
        ...


@dataclass(slots=True)
class ScoreInput:
    output_text: str  # the answer's text (choices[0].message.content or "")
    output: dict[str, Any] | None  # the full chat.completion body, if any
    expected: str | None  # the case's expected output
    variables: dict[str, Any] = field(default_factory=dict)  # the case's variables
    context: list[str] = field(default_factory=list)  # context documents
    latency_ms: float | None = None
    cost_usd: float | None = None
    llm: LLM | None = None  # set by the runner; model-graded scorers call models through it
    messages: list[dict[str, Any]] = field(default_factory=list)  # the input sent


@runtime_checkable
class Scorer(Protocol):
    name: str

    async def score(self, inp: ScoreInput) -> Score: ...


Factory = Callable[[dict[str, Any]], Scorer]
F = TypeVar("F", bound=Factory)


class ScorerConfigError(LocatedConfigError):
    """A ``scorers:`` entry that cannot be built; the message names where, which key and the fix.

    ``key`` is the offending option (``None`` for the entry as a whole); ``detail`` is the
    message without the location prefix.
    """


def _load_builtins() -> None:
    from keel.evals import scorers  # noqa: F401  (imports the built-ins, which register)


SCORERS: FactoryRegistry[Scorer] = FactoryRegistry(
    "scorer", "keel.scorers", ScorerConfigError, _load_builtins,
    example="{type: contains, value: \"{{expected}}\"}")
_REGISTRY: dict[str, Factory] = SCORERS.entries


def register_scorer(type_name: str) -> Callable[[F], F]:
    """Register a scorer factory (a callable taking the config mapping) under ``type_name``.

    Registering the same name again in code replaces the earlier factory; a plugin installed
    as a distribution never replaces one (its name clashing is an error).
    """
    return SCORERS.register(type_name)


def scorer_types() -> list[str]:
    """Every scorer type, built-in or plugin, sorted."""
    return SCORERS.names()


def build_scorer(config: dict[str, Any], where: str = "scorers[0]") -> Scorer:
    """Build one scorer from its config mapping (``{type: contains, value: ..., ...}``)."""
    return SCORERS.build(config, where)
