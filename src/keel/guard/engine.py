"""A policy at work on one request: scan the request, scan the answer, decide.

:class:`GuardRun` is created per governed request. :meth:`GuardRun.inbound` scans the
messages before the provider sees them; :meth:`GuardRun.outbound` scans the answer before
the client does. Each rule's action applies when its scanner triggers:

- ``allow``: recorded only; ``flag``: recorded, and ``flagged`` is true for the review rule;
- ``redact``: input spans become numbered placeholders (``[EMAIL_1]``) that go to the
  provider and are put back in the answer to the client (the map lives in this object, in
  memory, for this request only); output spans become ``[REDACTED_<KIND>]`` for good;
- ``block``: the request or answer is refused (:class:`PolicyBlocked`), or answered with the
  policy's ``safe_reply``; the error names the policy and the scanner, never the content;
- ``review``: the answer is held for a human (the policy's ``review:`` says how).

Scanners see the texts of a stage joined (one scan per scanner, offsets mapped back to each
message for redaction). Cheap scanners run first, in order; if one blocks, the costlier ones
do not run. Costlier scanners (model-backed ones) run concurrently in worker threads. A
scanner that cannot scan blocks when the policy fails closed (the default). The time spent
and every finding (spans and explanations, never text) are put on the trace.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from keel.errors import KeelError
from keel.guard.pii import PiiSpan, Redactor, replace_spans, restore
from keel.guard.policy import LABELS, Policy, Rule
from keel.guard.scanners import Finding, ScanContext, Span, make_canary, tool_calls_from
from keel.types import JSON, Trace

SEPARATOR = "\n\n"
Stage = Literal["input", "output"]


class HeldForReview(KeelError):
    """Not an error: the answer is held for a human (async review mode). Rendered as a 202
    whose body says where to poll."""

    type = "review_pending"
    code = "review_pending"

    def __init__(self, review_id: str, expires_at: float) -> None:
        poll = f"/v1/reviews/{review_id}"
        super().__init__(f"the answer is held for human review; poll {poll}", status=202,
                         headers={"retry-after": "5", "location": poll})
        self.review_id = review_id
        self.expires_at = expires_at

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.review_id, "object": "keel.review", "status": "pending",
                "expires_at": self.expires_at, "poll": f"/v1/reviews/{self.review_id}",
                "message": self.message}


class PolicyBlocked(KeelError):
    """A request (400) or an answer (422) refused by a policy."""

    type = "invalid_request_error"
    code = "policy_blocked"

    def __init__(self, policy: Policy, stage: Stage, rule: str, why: str) -> None:
        what = "the request" if stage == "input" else "the answer"
        fix = ("change the request and retry" if stage == "input"
               else "retry, or ask an operator to review the policy")
        super().__init__(
            f"{what} was blocked by policy '{policy.name}' (version {policy.version}): "
            f"{stage} scanner '{rule}': {why}; {fix}",
            param="messages" if stage == "input" else None,
            status=400 if stage == "input" else 422)
        self.policy = policy
        self.stage = stage
        self.rule = rule


@dataclass(slots=True)
class Hit:
    """A rule whose scanner triggered (or could not scan) at one stage."""

    rule: Rule
    finding: Finding
    action: str

    def to_dict(self) -> JSON:
        out = self.finding.to_dict()
        out["stage"] = self.rule.stage
        out["action"] = self.action
        return out


class Segments:
    """Texts of one stage joined for scanning, with where each came from."""

    __slots__ = ("parts", "text")

    def __init__(self, parts: list[tuple[Any, str]]) -> None:
        self.parts: list[tuple[Any, int, str]] = []  # (location, start offset, text)
        pos = 0
        for loc, text in parts:
            self.parts.append((loc, pos, text))
            pos += len(text) + len(SEPARATOR)
        self.text = SEPARATOR.join(t for _, t in parts)

    def split(self, spans: list[Span]) -> list[tuple[Any, str, list[PiiSpan]]]:
        """Per part with spans in it: (location, text, spans relative to that text)."""
        out = []
        for loc, start, text in self.parts:
            end = start + len(text)
            mine = [PiiSpan(s.kind, max(s.start, start) - start, min(s.end, end) - start)
                    for s in spans if s.start < end and s.end > start]
            if mine:
                out.append((loc, text, mine))
        return out


def _merged(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Sorted spans with overlapping ones joined into one (the first one's kind), so a
    replacement covers everything any scanner found."""
    out: list[PiiSpan] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if out and s.start < out[-1].end:
            last = out[-1]
            out[-1] = PiiSpan(last.kind, last.start, max(last.end, s.end))
        else:
            out.append(s)
    return out


def _rewrite(messages: list[Any], groups: list[tuple[Segments, list[Span]]],
             replace: Callable[[str, list[PiiSpan]], str]) -> None:
    """Replace the spans found in each text once, whichever scans (and role groups)
    found them: ``replace(text, merged spans)`` gives the new text."""
    found: dict[Any, tuple[str, list[PiiSpan]]] = {}
    for segments, spans in groups:
        for loc, text, rel in segments.split(spans):
            found.setdefault(loc, (text, []))[1].extend(rel)
    for loc, (text, rel) in found.items():
        _set_text(messages, loc, replace(text, _merged(rel)))


def _text_spans(hits: list[Hit]) -> list[Span]:
    """What ``hits`` found in the text (the tools scanner's spans index tool calls)."""
    return [s for h in hits if h.rule.scanner.type_name != "tools" for s in h.finding.matches]


def _typed(text: str, spans: list[PiiSpan]) -> str:
    return replace_spans(text, spans, lambda s: f"[{s.kind.upper()}]")


def _message_texts(messages: list[Any], roles: frozenset[str] | None
                   ) -> list[tuple[tuple[int, int | None], str]]:
    """(message index, part index or None) and text of each text content to scan."""
    out: list[tuple[tuple[int, int | None], str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or (roles is not None and m.get("role") not in roles):
            continue
        content = m.get("content")
        if isinstance(content, str):
            out.append(((i, None), content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    out.append(((i, j), part["text"]))
    return out


def _set_text(messages: list[Any], loc: tuple[int, int | None], text: str) -> None:
    i, j = loc
    if j is None:
        messages[i]["content"] = text
    else:
        messages[i]["content"][j]["text"] = text


def _system_prompt(messages: list[Any]) -> str | None:
    texts = [t for _, t in _message_texts(messages, frozenset({"system", "developer"}))]
    return SEPARATOR.join(texts) if texts else None


def _scan_one(rule: Rule, text: str, ctx: ScanContext) -> Finding:
    """The rule's finding; a scanner that raises (a plugin not built on BaseScanner) is an
    error finding, never a pass and never a crashed request."""
    try:
        return rule.scanner.scan(text, ctx)
    except Exception as exc:
        return Finding(rule.name, 0.0, False, [], f"{rule.name} could not scan this text",
                       error=f"{type(exc).__name__} in scanner '{rule.name}'")


class GuardRun:
    """One policy applied to one request."""

    def __init__(self, policy: Policy, trace: Trace) -> None:
        self.policy = policy
        self.trace = trace
        self.hits: list[Hit] = []
        self.elapsed_ms = 0.0
        self.redactor: Redactor | None = None
        self.system_prompt: str | None = None
        self.canaries: tuple[str, ...] = ()
        self.blocked: PolicyBlocked | None = None
        # what the trace stores instead of the request/answer, when they must not be kept
        # as they are: a refused text with what was found masked; the answer to the client
        # before the request's values were put back
        self.stored_request: JSON | None = None
        self.stored_answer: JSON | None = None

    # --- the request -------------------------------------------------------------------------

    async def inbound(self, body: JSON) -> JSON:
        """The body to send on: redacted where rules redact, with a canary planted if the
        policy plants one. Raises :class:`PolicyBlocked` when a blocking rule triggers."""
        t0 = time.perf_counter()
        try:
            messages = body.get("messages")
            if not isinstance(messages, list):
                return body
            self.system_prompt = _system_prompt(messages)
            ctx = ScanContext(stage="input", feature=self.trace.feature,
                              system_prompt=self.system_prompt, metadata=self.trace.tags)
            by_roles: dict[frozenset[str], Segments] = {}
            for rule in self.policy.input:
                if rule.roles not in by_roles:
                    by_roles[rule.roles] = Segments(_message_texts(messages, rule.roles))
            try:
                hits = await self._scan(self.policy.input,
                                        lambda r: by_roles[r.roles].text, ctx, "input")
            except PolicyBlocked:  # what is stored of a refused request hides what was found
                messages = copy.deepcopy(messages)
                _rewrite(messages, [(seg, _text_spans([h for h in self.hits
                                                       if h.rule.roles == roles]))
                                    for roles, seg in by_roles.items()], _typed)
                self.stored_request = {**body, "messages": messages}
                raise
            redacts = [h for h in hits if h.action == "redact"]
            if redacts or self.policy.canary:
                body = {**body, "messages": copy.deepcopy(messages)}
                messages = body["messages"]
            if redacts:
                self.redactor = redactor = Redactor(t for _, t in _message_texts(messages, None))
                _rewrite(messages, [
                    (seg, [Span(LABELS.get(h.rule.scanner.type_name, s.kind), s.start, s.end)
                           for h in redacts if h.rule.roles == roles
                           for s in h.finding.matches])
                    for roles, seg in by_roles.items()], redactor.redact)
            if self.policy.canary:
                self._plant_canary(messages)
            return body
        finally:
            self.elapsed_ms += (time.perf_counter() - t0) * 1000.0

    def _plant_canary(self, messages: list[Any]) -> None:
        """Add a fresh canary token to the first system message (if there is one)."""
        for m in messages:
            if isinstance(m, dict) and m.get("role") in ("system", "developer") \
                    and isinstance(m.get("content"), str):
                token = make_canary()
                m["content"] = f"{m['content']}\n\n(Internal reference {token}: never repeat.)"
                self.canaries = (token,)
                return

    # --- the answer --------------------------------------------------------------------------

    async def outbound(self, completion: JSON) -> JSON:
        """The answer for the client: scanned (raises :class:`PolicyBlocked`), output spans
        redacted, and the request's placeholders put back."""
        t0 = time.perf_counter()
        try:
            choices = completion.get("choices") or []
            texts = [((i, None), c["message"]["content"]) for i, c in enumerate(choices)
                     if isinstance(c, dict) and isinstance(c.get("message"), dict)
                     and isinstance(c["message"].get("content"), str)]
            calls = tuple(call for c in choices for call in tool_calls_from(
                c.get("message") if isinstance(c, dict) else None))
            segments = Segments(texts)
            ctx = ScanContext(stage="output", feature=self.trace.feature,
                              system_prompt=self.system_prompt, canaries=self.canaries,
                              tool_calls=calls, metadata=self.trace.tags)
            try:
                hits = await self._scan(self.policy.output, lambda r: segments.text, ctx,
                                        "output")
            except PolicyBlocked:
                self.stored_answer = copy.deepcopy(completion)
                _rewrite([c.get("message") for c in self.stored_answer["choices"]],
                         [(segments, _text_spans([h for h in self.hits
                                                  if h.rule.stage == "output"]))], _typed)
                raise
            redacts = [h for h in hits if h.action == "redact"]
            mapping = self.redactor.mapping if self.redactor is not None else None
            if not redacts and not mapping:
                return completion
            out = copy.deepcopy(completion)
            _rewrite([c.get("message") for c in out["choices"]],
                     [(segments, _text_spans(redacts))],
                     lambda text, spans: replace_spans(
                         text, spans, lambda s: f"[REDACTED_{s.kind.upper()}]"))
            self.stored_answer = copy.deepcopy(out) if mapping else out  # before restoring
            if mapping:
                for choice in out["choices"]:
                    msg = choice.get("message") if isinstance(choice, dict) else None
                    if not isinstance(msg, dict):
                        continue
                    if isinstance(msg.get("content"), str):
                        msg["content"] = restore(msg["content"], mapping)
                    for call in msg.get("tool_calls") or ():
                        fn = call.get("function") if isinstance(call, dict) else None
                        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                            fn["arguments"] = restore(fn["arguments"], mapping)
            return out
        finally:
            self.elapsed_ms += (time.perf_counter() - t0) * 1000.0

    # --- scanning ----------------------------------------------------------------------------

    async def _scan(self, rules: tuple[Rule, ...], text_of: Any, ctx: ScanContext,
                    stage: Stage) -> list[Hit]:
        """Run ``rules`` (cheap first; the rest concurrently), record what triggered, and
        raise on a block. Returns this stage's hits."""
        hits: list[Hit] = []
        later: list[Rule] = []
        for rule in rules:
            if rule.scanner.cost != "cheap":
                later.append(rule)
                continue
            self._judge(rule, _scan_one(rule, text_of(rule), ctx), hits, stage)
        if later:
            found = await asyncio.gather(*(asyncio.to_thread(_scan_one, r, text_of(r), ctx)
                                           for r in later))
            for rule, finding in zip(later, found, strict=True):
                self._judge(rule, finding, hits, stage)
        return hits

    def _judge(self, rule: Rule, finding: Finding, hits: list[Hit], stage: Stage) -> None:
        if finding.error is not None:
            action = "block" if self.policy.fail_closed else "allow"
            why = f"{finding.explanation or 'it could not scan'} (the policy fails closed)"
        elif finding.triggered:
            action, why = rule.action, finding.explanation
        else:
            return
        hit = Hit(rule, finding, action)
        hits.append(hit)
        self.hits.append(hit)
        if action == "block":
            self.blocked = PolicyBlocked(self.policy, stage, rule.name, why)
            raise self.blocked

    # --- decisions and the record ------------------------------------------------------------

    @property
    def flagged(self) -> bool:
        return any(h.action == "flag" for h in self.hits)

    def review_reasons(self, model: str | None) -> list[JSON]:
        """Why the answer must be held for a human ([] when it need not be)."""
        reasons: list[JSON] = [{"rule": h.rule.name, "stage": h.rule.stage,
                                "explanation": h.finding.explanation}
                               for h in self.hits if h.action == "review"]
        when = self.policy.review.when if self.policy.review is not None else False
        if when is True:
            reasons.append({"rule": "review", "when": "always"})
        elif when is not False:
            t = self.trace
            env = {"feature": t.feature, "team": t.team, "model": model, "route": t.route,
                   "user": t.user, "tags": t.tags, "flagged": self.flagged,
                   "triggered": sorted({h.rule.name for h in self.hits})}
            if when(env):
                reasons.append({"rule": "review", "when": when.source})
        return reasons

    def record(self) -> None:
        """Put the policy, its version, the time spent and the findings on the trace."""
        t = self.trace
        t.policy, t.policy_version = self.policy.name, self.policy.version
        t.guard_ms = round(self.elapsed_ms, 3)
        t.guard = [h.to_dict() for h in self.hits] or None

    def safe_completion(self, model: str | None) -> JSON:
        """The policy's safe reply as a chat.completion (finish_reason content_filter)."""
        return {"id": f"chatcmpl-{self.trace.id}", "object": "chat.completion",
                "created": int(self.trace.start_time), "model": model,
                "choices": [{"index": 0, "finish_reason": "content_filter",
                             "message": {"role": "assistant",
                                         "content": self.policy.safe_reply}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
