"""Fold a stream of OpenAI-format ``chat.completion.chunk`` dicts into one ``chat.completion``.

``StreamAccumulator`` is the one fold: the gateway feeds it every chunk it passes through
(the completion it builds is stored on the trace and written to the cache), and
``chunks_to_completion`` folds a finished list of chunks the same way (the inverse of the
cache's replay). It keeps, per choice, the role, ``content``, ``refusal`` and
``reasoning_content`` texts, tool calls, ``logprobs`` (the lists of every chunk, joined),
the finish reason and keel's ``stop_sequence``; per stream, the id, creation time, model,
``system_fingerprint``, ``service_tier`` and the usage as the upstream reported it.

It runs once per chunk on the hot path, so ``add`` does a handful of dict lookups and list
appends per choice and copies nothing; the texts are joined once, in ``body``.
"""

from __future__ import annotations

from typing import Any

from keel.text import estimate_messages, estimate_text
from keel.types import JSON, Usage

# keel-internal key on a choice: the stop sequence that ended it (``/v1/messages`` answers
# with it, the OpenAI endpoint strips it); it rides on the choice's finishing chunk
STOP_SEQUENCE = "stop_sequence"


class _Call:
    """One tool call being streamed: its id, type, and the name and arguments in pieces."""

    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: Any = None
        self.type = "function"
        self.name: list[str] = []
        self.arguments: list[str] = []


class _Choice:
    """What the chunks of one choice carried so far."""

    __slots__ = ("calls", "content", "finish", "logprobs", "reasoning", "refusal", "role",
                 "stop_sequence")

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, _Call] = {}
        self.logprobs: dict[str, list[Any]] | None = None
        self.finish: Any = None
        self.stop_sequence: str | None = None

    def add_calls(self, deltas: Any) -> None:
        calls = self.calls
        for delta in deltas:
            index = int(delta.get("index") or 0)
            call = calls.get(index)
            if call is None:
                call = calls[index] = _Call()
            if delta.get("id"):
                call.id = delta["id"]
            if delta.get("type"):
                call.type = delta["type"]
            fn = delta.get("function")
            if fn:
                if fn.get("name"):
                    call.name.append(fn["name"])
                if fn.get("arguments"):
                    call.arguments.append(fn["arguments"])

    def add_logprobs(self, part: Any) -> None:
        """Join a chunk's ``logprobs`` lists (``content``, ``refusal``) onto the choice's."""
        if not isinstance(part, dict):
            return
        into = self.logprobs
        if into is None:
            into = self.logprobs = {}
        for name, items in part.items():
            if isinstance(items, list):
                into.setdefault(name, []).extend(items)

    def message(self) -> JSON:
        msg: JSON = {"role": self.role, "content": "".join(self.content) or None}
        if self.refusal:
            msg["refusal"] = "".join(self.refusal)
        if self.reasoning:
            msg["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": c.type,
                 "function": {"name": "".join(c.name), "arguments": "".join(c.arguments)}}
                for _, c in sorted(self.calls.items())]
        return msg

    def text(self) -> str:
        """Everything the choice generated, as text (for estimating its tokens)."""
        return "".join(self.reasoning) + "".join(self.content) + "".join(self.refusal) + \
            "".join(a for c in self.calls.values() for a in c.arguments)


class StreamAccumulator:
    """Collects a streamed answer, chunk by chunk, into the ``chat.completion`` it amounts to."""

    __slots__ = ("_choices", "_usage", "created", "id", "model", "service_tier",
                 "system_fingerprint")

    def __init__(self) -> None:
        self.id: str | None = None
        self.created = 0
        self.model: str | None = None
        self.system_fingerprint: Any = None
        self.service_tier: Any = None
        self._usage: JSON | None = None
        self._choices: dict[int, _Choice] = {}

    def add(self, chunk: JSON) -> None:
        if self.id is None and chunk.get("id"):
            # the stream's identity is taken from the first chunk that names it
            self.id = str(chunk["id"])
            self.created = int(chunk.get("created") or 0)
            self.system_fingerprint = chunk.get("system_fingerprint")
            self.service_tier = chunk.get("service_tier")
        if self.model is None and chunk.get("model"):
            self.model = str(chunk["model"])
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        choices = chunk.get("choices")
        if not choices:
            return
        slots = self._choices
        for choice in choices:
            index = int(choice.get("index") or 0)
            slot = slots.get(index)
            if slot is None:
                slot = slots[index] = _Choice()
            delta = choice.get("delta")
            if delta:
                for key, value in delta.items():
                    if not value:
                        continue
                    if key == "tool_calls":
                        slot.add_calls(value)
                    elif value.__class__ is not str:
                        continue  # a text field that is not text: nothing to join
                    elif key == "content":
                        slot.content.append(value)
                    elif key == "reasoning_content":
                        slot.reasoning.append(value)
                    elif key == "refusal":
                        slot.refusal.append(value)
                    elif key == "role":
                        slot.role = value
            logprobs = choice.get("logprobs")
            if logprobs:
                slot.add_logprobs(logprobs)
            finish = choice.get("finish_reason")
            if finish:
                slot.finish = finish
                sequence = choice.get(STOP_SEQUENCE)
                if isinstance(sequence, str):
                    slot.stop_sequence = sequence

    @property
    def usage(self) -> Usage:
        """The usage the stream reported (zero when it reported none)."""
        return Usage.from_openai(self._usage)

    @property
    def produced(self) -> bool:
        """Whether any choice generated text or a tool call yet."""
        return any(s.content or s.refusal or s.reasoning or s.calls
                   for s in self._choices.values())

    def estimate(self, request: JSON | None) -> Usage:
        """Usage estimated from the request's messages and what was generated so far."""
        text = "".join(s.text() for s in self._choices.values())
        return Usage(input_tokens=estimate_messages((request or {}).get("messages") or []),
                     output_tokens=estimate_text(text))

    def body(self) -> JSON:
        """The ``chat.completion`` the chunks so far amount to: stored on the trace, and
        valid to serve from the cache."""
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            choice: JSON = {"index": index, "message": slot.message(),
                            "logprobs": slot.logprobs, "finish_reason": slot.finish}
            if slot.stop_sequence is not None:
                choice[STOP_SEQUENCE] = slot.stop_sequence
            choices.append(choice)
        out: JSON = {"id": self.id or "chatcmpl-keel", "object": "chat.completion",
                     "created": self.created, "model": self.model}
        if self.system_fingerprint is not None:
            out["system_fingerprint"] = self.system_fingerprint
        if self.service_tier is not None:
            out["service_tier"] = self.service_tier
        out["choices"] = choices
        out["usage"] = self._usage if self._usage is not None else Usage().to_openai()
        return out


def chunks_to_completion(chunks: list[JSON]) -> JSON:
    """Fold a finished stream of ``chat.completion.chunk`` dicts into one ``chat.completion``."""
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.body()
