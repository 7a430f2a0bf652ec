"""Scoring one answer: every scorer of the suite, the deterministic ones awaited in place and
the model-graded ones concurrently, a scorer that raises turned into an errored score; and
the model access those scorers are given (:class:`ScoringLLM`: through the gateway, cached
like the targets' answers, costed to the run)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from keel.evals.runner.replies import cacheable, reply_from_cache, request_key
from keel.evals.scorers import LLMError, Score, ScoreInput
from keel.evals.scorers.support import BaseScorer
from keel.gateway.calls import Reply
from keel.store import evals as q
from keel.types import JSON

if TYPE_CHECKING:
    from keel.evals.runner.pipeline import Runner


class ScoringLLM:
    """Model calls made by scorers for one case: through the gateway, cached, costed."""

    def __init__(self, runner: Runner, retries: int, run_id: str, repeat: int = 0) -> None:
        self.runner = runner
        self.retries = retries
        self.salt = f"scorer:repeat={repeat}"  # a judge's noise shows across repeats too
        self.tags = {"keel.eval_run": run_id, "keel.purpose": "eval-scorer"}
        self.cost_usd = 0.0

    async def _cached(self, key: str) -> Reply | None:
        if not self.runner.use_cache:
            return None
        found = await q.cache_get(self.runner.store, [key])
        return reply_from_cache(found[key]) if key in found else None

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        key = request_key(body, self.salt)
        reply = await self._cached(key)
        if reply is None:
            reply = await self.runner.call(body, self.retries, self.tags)
            self.cost_usd += reply.cost_usd
            if reply.error is None and reply.body is not None and cacheable(reply.body,
                                                                            judge=True):
                self.runner.results.cache(key, reply)
        if reply.error is not None or reply.body is None:
            raise LLMError(reply.error.message if reply.error else "no answer")
        return reply.body

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        body: JSON = {"model": model, "input": texts}
        key = request_key(body, "embed")
        reply = await self._cached(key)
        if reply is None:
            reply = await self.runner.call(body, self.retries, self.tags, embed=True)
            self.cost_usd += reply.cost_usd
            if reply.error is None and reply.body is not None:
                self.runner.results.cache(key, reply)
        if reply.error is not None or reply.body is None:
            raise LLMError(reply.error.message if reply.error else "no answer")
        data = sorted(reply.body.get("data") or [], key=lambda d: d.get("index", 0))
        return [list(d["embedding"]) for d in data]


def inline(scorer: Any) -> bool:
    """A scorer that never waits (the deterministic built-ins): awaited in place, since a
    task per scorer per case costs more than the scoring (measured in bench/)."""
    return isinstance(scorer, BaseScorer) and type(scorer).score is BaseScorer.score


async def score_all(scorers: list[Any], inp: ScoreInput) -> list[Score]:
    """Every scorer's score, in order; the ones that wait (model calls) run concurrently."""
    out: list[Score | None] = [None] * len(scorers)
    waiting: list[int] = []
    for i, scorer in enumerate(scorers):
        if inline(scorer):
            out[i] = await safe_score(scorer, inp)
        else:
            waiting.append(i)
    if len(waiting) == 1:
        out[waiting[0]] = await safe_score(scorers[waiting[0]], inp)
    elif waiting:
        done = await asyncio.gather(*(safe_score(scorers[i], inp) for i in waiting))
        for i, score in zip(waiting, done, strict=True):
            out[i] = score
    return [s for s in out if s is not None]


async def safe_score(scorer: Any, inp: ScoreInput) -> Score:
    """A scorer's result; a scorer that raises gives an errored score, never a pass."""
    try:
        result: Awaitable[Score] = scorer.score(inp)
        score = await result
    except LLMError as exc:
        return Score(0.0, None, "", error=f"model call failed: {exc}")
    except Exception as exc:
        return Score(0.0, None, "", error=f"scorer raised {type(exc).__name__}: {exc}")
    if not isinstance(score, Score):
        return Score(0.0, None, "", error=f"scorer returned {type(score).__name__}, not a Score")
    if score.passed is not None and not isinstance(score.passed, bool):
        try:  # e.g. numpy.bool_ from a custom scorer
            return Score(score.value, bool(score.passed), score.explanation, score.error,
                         score.error_kind)
        except Exception:
            return Score(0.0, None, "", error=f"scorer's passed is {score.passed!r}, not a bool")
    return score
