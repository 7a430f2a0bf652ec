"""Custom scorers: the ``python`` type, and the ``scorer`` decorator for plugins.

A custom function takes a :class:`ScoreInput` and returns a :class:`Score`, a ``bool``
(pass/fail) or a number in 0..1 (``passed`` is ``value >= threshold``, default 0.5). It
may be sync or async. If it raises, or returns anything else, the case gets a Score with
``error`` set, never a pass.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from keel.evals.scorers.base import Score, ScoreInput, ScorerConfigError, register_scorer
from keel.evals.scorers.support import BaseScorer, Options

Fn = TypeVar("Fn", bound=Callable[..., Any])


def load_function(ref: str) -> Callable[..., Any]:
    """Import ``package.module:func`` (``func`` may be dotted: ``module:Class.method``)."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ScorerConfigError(f"'{ref}' is not 'package.module:function'; e.g. function: "
                                "my_evals.scorers:is_polite", key="function")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScorerConfigError(f"cannot import module '{module_name}': {exc}; is it on "
                                "PYTHONPATH?", key="function") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ScorerConfigError(f"module '{module_name}' has no '{attr}'",
                                    key="function")
        target = getattr(target, part)
    if not callable(target):
        raise ScorerConfigError(f"'{ref}' is not callable", key="function")
    return target  # type: ignore[no-any-return]


class FunctionScorer(BaseScorer):
    """Wraps a function ``(ScoreInput) -> Score | bool | float`` (sync or async)."""

    default_threshold = 0.5

    def __init__(self, config: dict[str, Any], func: Callable[..., Any] | None = None) -> None:
        self.func = func
        super().__init__(config)

    def configure(self, opts: Options) -> None:
        if self.func is None:
            self.func = load_function(opts.string("function", "my_evals.scorers:is_polite"))
        self.label = getattr(self.func, "__qualname__", repr(self.func))

    def evaluate(self, inp: ScoreInput) -> Score:  # pragma: no cover - score() is async
        raise NotImplementedError

    async def score(self, inp: ScoreInput) -> Score:
        assert self.func is not None
        try:
            result = self.func(inp)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return Score(0.0, None, f"could not score: {self.label} raised {type(exc).__name__}",
                         error=f"{self.label} raised {type(exc).__name__}: {exc}")
        return self.convert(result)

    def convert(self, result: Any) -> Score:
        if isinstance(result, Score):
            return result
        if isinstance(result, bool):
            return self.check(result, f"{self.label} returned True",
                              f"{self.label} returned False")
        if isinstance(result, int | float) and 0.0 <= result <= 1.0:
            return self.verdict(float(result), f"{self.label} returned {float(result):g}")
        return Score(0.0, None, f"could not score: {self.label} returned an unusable value",
                     error=f"{self.label} returned {result!r}; return a Score, a bool or a "
                           "number in 0..1")


@register_scorer("python")
class PythonScorer(FunctionScorer):
    """``function: "package.module:func"``: a custom scorer imported when the config loads."""

    options = ("function",)


def scorer(type_name: str) -> Callable[[Fn], Fn]:
    """Register a plain function ``(ScoreInput) -> Score | bool | float`` as a scorer type.

    ::

        @scorer("mentions-source")
        def mentions_source(inp: ScoreInput) -> bool:
            return any(doc[:40] in inp.output_text for doc in inp.context)

    The type then accepts ``name:`` and ``threshold:`` (for numeric results; default 0.5).
    The function is returned unchanged.
    """

    def deco(func: Fn) -> Fn:
        def factory(config: dict[str, Any]) -> FunctionScorer:
            return FunctionScorer(config, func)

        register_scorer(type_name)(factory)
        return func

    return deco
