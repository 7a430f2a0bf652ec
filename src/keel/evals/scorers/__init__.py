"""Scorers for the eval harness: the registry, the deterministic and the model-graded built-ins.

Importing this package registers the built-in types (through ``register_scorer``, the
same door plugins use): equals, contains, contains-any, contains-all, regex, starts-with,
length, is-json, json-schema, tool-call, latency, cost, refusal, python; and the
model-graded judge, groundedness (alias faithfulness), relevance, pairwise, similarity.
"""

from keel.evals.scorers import custom, judges, ops, structured, text  # noqa: F401  (register)
from keel.evals.scorers.base import (
    LLM,
    Factory,
    LLMError,
    Score,
    ScoreInput,
    Scorer,
    ScorerConfigError,
    build_scorer,
    register_scorer,
    scorer_types,
)
from keel.evals.scorers.custom import scorer

__all__ = ["LLM", "Factory", "LLMError", "Score", "ScoreInput", "Scorer", "ScorerConfigError",
           "build_scorer", "register_scorer", "scorer", "scorer_types"]
