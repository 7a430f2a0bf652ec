"""The base of the model-graded scorers (:class:`ModelScorer`: ``model``, ``threshold``,
the model access the eval runner provides) and of those that ask a chat model for a verdict
(:class:`ChatJudge`: the judge request and its options); a missing model access, a failed
call, a missing variable or an unreadable reply each become an errored score, never a
silent pass or fail."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from keel.evals.scorers.base import LLM, LLMError, Score, ScoreInput, ScorerConfigError
from keel.evals.scorers.judges.prompts import SYSTEM
from keel.evals.scorers.judges.replies import Unreadable, quote, reply_text
from keel.evals.scorers.support import MissingVariable, Options

DEFAULT_MAX_TOKENS = 512


def errored(explanation: str, error: str) -> Score:
    return Score(0.0, None, f"could not score: {explanation}", error=error)


class ModelScorer(ABC):
    """Base of the model-graded scorers: ``model`` and ``threshold``; turns a missing model
    access, a failed call or a missing variable into an errored score."""

    options: ClassVar[tuple[str, ...]] = ()
    default_threshold: ClassVar[float] = 0.7
    model_example: ClassVar[str] = "gpt-4o-mini"

    def __init__(self, config: dict[str, Any]) -> None:
        opts = Options(config, ("model", "threshold", *self.allowed()))
        self.type_name = opts.type
        self.name = opts.name
        self.model = opts.string("model", self.model_example)
        if not self.model.strip():
            raise ScorerConfigError(f"must name a model; e.g. model: {self.model_example}",
                                    key="model")
        self.threshold = opts.number("threshold", "0.8", self.default_threshold, 0.0, 1.0)
        self.configure(opts)

    @classmethod
    def allowed(cls) -> tuple[str, ...]:
        return cls.options

    def configure(self, opts: Options) -> None:  # noqa: B027  (optional hook)
        """Read the scorer's own options."""

    @abstractmethod
    async def grade(self, inp: ScoreInput, llm: LLM) -> Score: ...

    async def score(self, inp: ScoreInput) -> Score:
        if inp.llm is None:
            return errored("no model access", f"'{self.name}' is a model-graded scorer "
                           f"({self.type_name}): it needs the model access the eval runner "
                           "provides; run it with keel eval run")
        try:
            return await self.grade(inp, inp.llm)
        except MissingVariable as exc:
            have = ", ".join(exc.available) or "none"
            return errored(f"variable '{exc.name}' is not set",
                           f"missing variable '{exc.name}' for scorer '{self.name}' "
                           f"(this case has: {have})")
        except LLMError as exc:
            return errored("the model call failed",
                           f"{self.type_name} model '{self.model}' call failed: {exc}")

    def verdict(self, value: float, explanation: str) -> Score:
        return Score(value, value >= self.threshold, explanation)


class ChatJudge(ModelScorer):
    """A scorer that asks a chat model for a verdict."""

    @classmethod
    def allowed(cls) -> tuple[str, ...]:
        return (*cls.options, "temperature", "max_tokens", "json_mode")

    def configure(self, opts: Options) -> None:
        self.temperature = opts.number("temperature", "0", 0.0, 0.0, 2.0)
        max_tokens = opts.count("max_tokens")
        if max_tokens == 0:
            raise ScorerConfigError("must be at least 1; e.g. max_tokens: 512", key="max_tokens")
        self.max_tokens = max_tokens or DEFAULT_MAX_TOKENS
        self.json_mode = opts.flag("json_mode", False)
        self.configure_judge(opts)

    def configure_judge(self, opts: Options) -> None:
        """Read the judge's own options."""

    def request(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": prompt}]}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    async def ask(self, llm: LLM, prompt: str) -> tuple[str, str | None]:
        """The judge's reply: (its text, its finish_reason)."""
        return reply_text(await llm.chat(self.request(prompt)))

    def unreadable(self, exc: Unreadable, raw: str, finish: str | None) -> Score:
        """The errored score for a reply without a usable verdict, quoting the reply."""
        kind = "the judge returned no text" if not raw.strip() else str(exc)
        detail = kind if not raw.strip() else f"{exc}; judge said: {quote(raw)}"
        if finish == "length":
            cut = f" (the reply was cut off at max_tokens {self.max_tokens}; raise it)"
            kind, detail = kind + cut, detail + cut
        who = "judge" if self.type_name == "judge" else f"{self.type_name} judge"
        prefix = f"{who} '{self.model}': unreadable verdict: "
        return Score(0.0, None, "could not score: the judge's reply could not be read",
                     error=prefix + detail, error_kind=prefix + kind)
