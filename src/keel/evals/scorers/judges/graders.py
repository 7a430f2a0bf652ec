"""Model-graded scorers: judge, groundedness (alias faithfulness), relevance, pairwise,
similarity.

They call models through ``ScoreInput.llm``, which the eval runner provides: every call
goes through the gateway (traced with the tag ``keel.purpose=eval-scorer``, its cost added
to the run's) and through the eval result cache, so re-running an unchanged suite makes no
new judge calls. Called without it (outside the runner) they return an errored score.

Every judge is asked for one JSON object. The reply is read leniently — a bare object, one
inside a ```json fence or surrounded by prose, numbers written as strings, and a plain
``Score: 4/5`` line are all accepted — but never guessed: a reply without a usable verdict,
or with a score outside the scale, gives an errored score that quotes the reply. A failed
judge call (after the runner's retries) is an errored score too. Never a silent pass or fail.

Options every scorer here takes: ``model`` (required; a model or route name the gateway
serves) and ``threshold`` (0..1, on the scorer's 0..1 value). The chat-based ones also take
``temperature`` (default 0), ``max_tokens`` (default 512) and ``json_mode`` (default false;
when true the request asks for ``response_format: {type: json_object}``, which not every
provider supports). ``rubric`` and ``criterion`` may use ``{{variable}}`` placeholders.

``judge``
    Grades the answer against ``rubric`` on ``scale`` (``[low, high]``, default ``[1, 5]``).
    The value is the score normalised to 0..1: ``(score - low) / (high - low)``. Default
    ``threshold`` 0.7: on the default scale a 4 or 5 passes, a 3 fails. ``include`` lists
    what the judge sees besides the answer: ``input`` (alias ``messages``: the conversation
    sent), ``expected`` (as a reference answer), ``context`` (the case's documents); default
    all three, and a field the case does not have is left out. The explanation is the
    judge's reason.

``groundedness`` (also registered as ``faithfulness``)
    Splits the answer into its factual claims and checks each against the case's
    ``context`` documents. The value is the share of claims supported (1 when the answer
    makes none). Default ``threshold`` 1.0: every claim must be supported. A case without
    context is an errored score.

``relevance``
    Does the answer address the question, i.e. the last user message of the input sent?
    Graded 1..5 (relevance only, not correctness), normalised to 0..1; default
    ``threshold`` 0.7 (a 4 or 5 passes).

``pairwise``
    Compares the answer with a reference on ``criterion`` (required). ``against`` says
    which reference; ``expected`` (the case's expected answer) is the only value for now,
    and the default. To cancel position bias the judge is asked twice, once with the answer
    shown first and once with it shown second. Each verdict scores the answer 1 for a win,
    0.5 for a tie and 0 for a loss; the value is the mean of the two. Default ``threshold``
    0.5: the answer passes when it is at least as good as the reference (a win and a loss
    — a verdict that follows the position, not the answers — count as a tie).

``similarity``
    Cosine similarity between embeddings of the answer and the case's ``expected`` answer
    (one embedding call with both texts); ``model`` is an embedding model. Negative
    similarities count as 0. Default ``threshold`` 0.8. A case without ``expected`` is an
    errored score; an empty answer fails with value 0 (no call is made).
"""

from __future__ import annotations

import math

from keel.evals.scorers.base import LLM, Score, ScoreInput, ScorerConfigError, register_scorer
from keel.evals.scorers.judges.base import ChatJudge, ModelScorer, errored
from keel.evals.scorers.judges.prompts import (
    answer_shown,
    conversation,
    documents,
    last_user_message,
    tag,
)
from keel.evals.scorers.judges.replies import (
    Unreadable,
    quote,
    read_claims,
    read_score,
    read_winner,
)
from keel.evals.scorers.support import Options, Template, fill

INCLUDE = ("input", "messages", "expected", "context")


@register_scorer("judge")
class Judge(ChatJudge):
    """LLM-as-judge against a stated ``rubric`` on ``scale``; see the module docstring."""

    options = ("rubric", "scale", "include")

    def configure_judge(self, opts: Options) -> None:
        self.rubric = Template(opts.string("rubric", '"Polite, and resolves the question"'))
        if not self.rubric.text.strip():
            raise ScorerConfigError('must not be empty; e.g. rubric: "Polite, and resolves '
                                    'the question"', key="rubric")
        scale = opts.config.get("scale", [1, 5])
        if (not isinstance(scale, list) or len(scale) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | float) for v in scale)
                or not scale[0] < scale[1]):
            raise ScorerConfigError(f"must be [low, high], two numbers with low < high, got "
                                    f"{scale!r}; e.g. scale: [1, 5]", key="scale")
        self.low, self.high = float(scale[0]), float(scale[1])
        include = opts.config.get("include", ["input", "expected", "context"])
        if (not isinstance(include, list) or not all(isinstance(v, str) for v in include)
                or sorted(set(include) - set(INCLUDE))):
            raise ScorerConfigError(f"must be a list of {', '.join(INCLUDE)}, got {include!r}; "
                                    "e.g. include: [input, context]", key="include")
        self.include = {"input" if v == "messages" else v for v in include}

    def prompt(self, inp: ScoreInput) -> str:
        parts = ["Grade the answer against the rubric.", tag("rubric", fill(self.rubric, inp))]
        if "input" in self.include and inp.messages:
            parts.append(tag("conversation", conversation(inp.messages)))
        if "context" in self.include and inp.context:
            parts.append(tag("context", documents(inp.context)))
        if "expected" in self.include and inp.expected:
            parts.append(tag("reference_answer", inp.expected))
        low, high = f"{self.low:g}", f"{self.high:g}"
        parts += [tag("answer", answer_shown(inp)),
                  f"Score the answer from {low} (does not meet the rubric at all) to {high} "
                  "(fully meets it). Reply with only this JSON object:\n"
                  f'{{"reason": "<one or two sentences>", "score": <number from {low} to '
                  f"{high}>}}"]
        return "\n\n".join(parts)

    async def grade(self, inp: ScoreInput, llm: LLM) -> Score:
        raw, finish = await self.ask(llm, self.prompt(inp))
        try:
            score, reason = read_score(raw, self.low, self.high)
        except Unreadable as exc:
            return self.unreadable(exc, raw, finish)
        value = (score - self.low) / (self.high - self.low)
        return self.verdict(value, reason or f"the judge gave {score:g} on a "
                                             f"{self.low:g}-{self.high:g} scale "
                                             "(no reason given)")


@register_scorer("groundedness")
@register_scorer("faithfulness")
class Groundedness(ChatJudge):
    """Every claim of the answer is supported by the case's context; see the module
    docstring."""

    default_threshold = 1.0

    def prompt(self, inp: ScoreInput) -> str:
        parts = ["Check whether the answer is grounded in the context documents.",
                 tag("context", documents(inp.context))]
        question = last_user_message(inp.messages)
        if question:
            parts.append(tag("question", question))
        parts += [tag("answer", answer_shown(inp)),
                  "Split the answer into its factual claims and check each against the "
                  "context. A claim is supported only if the context states it or directly "
                  "implies it; general knowledge does not count. Greetings, questions and "
                  "saying that something is not known are not claims. Reply with only this "
                  'JSON object:\n{"claims": <number of claims>, "supported": <number '
                  'supported>, "unsupported": ["<each unsupported claim>"], "reason": '
                  '"<one sentence>"}']
        return "\n\n".join(parts)

    async def grade(self, inp: ScoreInput, llm: LLM) -> Score:
        if not any(doc.strip() for doc in inp.context):
            return errored("the case has no context",
                           f"{self.type_name} needs context documents to check the answer "
                           "against; this case has no context (add \"context\": [...] to it)")
        raw, finish = await self.ask(llm, self.prompt(inp))
        try:
            total, supported, unsupported, reason = read_claims(raw)
        except Unreadable as exc:
            return self.unreadable(exc, raw, finish)
        if total == 0:
            return self.verdict(1.0, "the answer makes no factual claims")
        why = f"{supported} of {total} claims supported by the context"
        if unsupported:
            why += "; unsupported: " + "; ".join(quote(c, 120) for c in unsupported[:5])
        elif reason:
            why += f"; {reason}"
        return self.verdict(supported / total, why)


@register_scorer("relevance")
class Relevance(ChatJudge):
    """The answer addresses the question (the last user message); see the module docstring."""

    def prompt(self, question: str, inp: ScoreInput) -> str:
        return "\n\n".join([
            "Judge whether the answer addresses the question. Judge relevance only, not "
            "correctness or style.",
            tag("question", question), tag("answer", answer_shown(inp)),
            "Score from 1 to 5: 5 = answers exactly what was asked; 4 = answers it, with "
            "some unneeded material; 3 = answers only part of it; 2 = mostly beside the "
            "point; 1 = does not address it. Reply with only this JSON object:\n"
            '{"reason": "<one sentence>", "score": <1 to 5>}'])

    async def grade(self, inp: ScoreInput, llm: LLM) -> Score:
        question = last_user_message(inp.messages)
        if question is None:
            return errored("no question", f"{self.type_name} needs a user message in the "
                           "input sent; this case's input has none")
        raw, finish = await self.ask(llm, self.prompt(question, inp))
        try:
            score, reason = read_score(raw, 1.0, 5.0)
        except Unreadable as exc:
            return self.unreadable(exc, raw, finish)
        return self.verdict((score - 1.0) / 4.0,
                            reason or f"the judge gave {score:g} of 5 (no reason given)")


_POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}


@register_scorer("pairwise")
class Pairwise(ChatJudge):
    """The answer against a reference on ``criterion``, asked in both orders; see the module
    docstring."""

    options = ("criterion", "against")
    default_threshold = 0.5

    def configure_judge(self, opts: Options) -> None:
        self.criterion = Template(opts.string(
            "criterion", '"Which answer resolves the customer\'s question more accurately"'))
        if not self.criterion.text.strip():
            raise ScorerConfigError("must not be empty; e.g. criterion: \"Which answer is more "
                                    "accurate\"", key="criterion")
        against = opts.string("against", "expected", default="expected")
        if against != "expected":
            raise ScorerConfigError(f"'{against}' is not supported; the reference is the "
                                    "case's expected answer: against: expected", key="against")

    def prompt(self, inp: ScoreInput, first: str, second: str) -> str:
        parts = ["Compare two answers to the same conversation on this criterion.",
                 tag("criterion", fill(self.criterion, inp))]
        if inp.messages:
            parts.append(tag("conversation", conversation(inp.messages)))
        parts += [tag("answer_a", first), tag("answer_b", second),
                  "Decide which answer better meets the criterion; say \"tie\" only if they "
                  "are equally good. Do not let the order or the length of the answers sway "
                  "you. Reply with only this JSON object:\n"
                  '{"reason": "<one or two sentences>", "winner": "A" or "B" or "tie"}']
        return "\n\n".join(parts)

    async def grade(self, inp: ScoreInput, llm: LLM) -> Score:
        if not inp.expected:
            return errored("the case has no expected answer",
                           f"{self.type_name} compares the answer with the case's expected "
                           "answer (against: expected); this case has none")
        answer = answer_shown(inp)
        outcomes: list[str] = []
        reasons: list[str] = []
        # Order 1: the answer is A; order 2 (swapped): the answer is B.
        for first, second, mine in ((answer, inp.expected, "A"), (inp.expected, answer, "B")):
            raw, finish = await self.ask(llm, self.prompt(inp, first, second))
            try:
                side, reason = read_winner(raw)
            except Unreadable as exc:
                return self.unreadable(exc, raw, finish)
            outcomes.append("tie" if side == "tie" else "win" if side == mine else "loss")
            reasons.append(reason)
        value = sum(_POINTS[o] for o in outcomes) / len(outcomes)
        why = (f"answer shown first: {outcomes[0]}; shown second: {outcomes[1]} "
               "(against the expected answer)")
        if outcomes[0] != outcomes[1] and "tie" not in outcomes:
            why += "; the verdict followed the position, counted as a tie"
        detail = " / ".join(r for r in reasons if r)
        return self.verdict(value, f"{why}. {detail}" if detail else why)


@register_scorer("similarity")
class Similarity(ModelScorer):
    """Cosine similarity of the answer's and ``expected``'s embeddings; see the module
    docstring."""

    default_threshold = 0.8
    model_example = "text-embedding-3-small"

    async def grade(self, inp: ScoreInput, llm: LLM) -> Score:
        expected = inp.expected
        if not expected:
            return errored("the case has no expected answer",
                           f"{self.type_name} compares the answer with the case's expected "
                           "answer; this case has none")
        if not inp.output_text.strip():
            return self.verdict(0.0, "the answer is empty")
        vectors = await llm.embed(self.model, [inp.output_text, expected])
        if len(vectors) != 2 or not vectors[0] or len(vectors[0]) != len(vectors[1]):
            shapes = [len(v) for v in vectors]
            return errored("unexpected embeddings",
                           f"{self.type_name} model '{self.model}' returned {len(vectors)} "
                           f"vector(s) of length(s) {shapes} for 2 texts")
        a, b = vectors
        norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
        if norm == 0.0 or not math.isfinite(norm):
            return errored("an embedding is all zeros",
                           f"{self.type_name} model '{self.model}' returned a zero vector; "
                           "cosine similarity is undefined")
        cosine = sum(x * y for x, y in zip(a, b, strict=True)) / norm
        value = min(1.0, max(0.0, cosine))
        return self.verdict(value, f"cosine similarity to the expected answer {cosine:.3f} "
                                   f"(threshold {self.threshold:g})")
