"""Verdicts for keel's own model-graded scorers, so evals run against the offline mock.

When the last user message is one of the prompts of ``keel.evals.scorers.judges``
(recognised by the reply format each prompt asks for, and its ``<answer>`` tags), the mock
answers with the JSON verdict that prompt asks for instead of its usual text. The verdict
is computed from the prompt alone, by word overlap, so it is deterministic, cheap and not
always a pass:

- ``judge``: the share of the reference's key words found in the answer, on the prompt's
  scale (rounded to a whole number on a whole-number scale). The reference is the
  ``<reference_answer>`` if shown, else the ``<context>`` and the last user line of the
  ``<conversation>``, else the ``<rubric>``.
- ``relevance``: the share of the ``<question>``'s key words found in the answer, on 1..5.
- ``groundedness``: each sentence of the answer with a key word is a claim; it is
  supported when at least half of its key words occur in the ``<context>``.
- ``pairwise``: the answer sharing more key words with the conversation's last user line
  wins; equal shares are a tie (so the verdict never depends on the order shown).

Key words are words of four letters or more, lower-cased, less a final ``s`` and a short
list of common words. Any other prompt returns ``None`` and gets the usual mock answer.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_TAGS = ("rubric", "conversation", "context", "reference_answer", "answer", "question",
         "answer_a", "answer_b")
_JUDGE_SCALE = re.compile(r'"score": <number from ([-+]?\d+(?:\.\d+)?) to ([-+]?\d+(?:\.\d+)?)>')
_RELEVANCE = '"score": <1 to 5>'
_GROUNDED = '"claims": <number of claims>'
_PAIRWISE = '"winner": "A" or "B" or "tie"'
_WORD = re.compile(r"[a-z][a-z0-9'-]{3,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_COMMON = frozenset((
    "about", "after", "again", "also", "answer", "because", "been", "before", "being",
    "both", "could", "does", "done", "each", "from", "have", "here", "into", "just", "like",
    "more", "most", "much", "only", "other", "over", "please", "same", "should", "some",
    "such", "than", "that", "their", "them", "then", "there", "these", "they", "this",
    "those", "very", "want", "were", "what", "when", "where", "which", "while", "will",
    "with", "would", "your", "yours",
))


def keywords(text: str) -> set[str]:
    """The key words of ``text`` (see the module docstring)."""
    out = set()
    for w in _WORD.findall(text.lower()):
        w = w.strip("'-")
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        if len(w) >= 4 and w not in _COMMON:
            out.add(w)
    return out


def verdict(messages: list[Any]) -> str | None:
    """The JSON verdict for a keel judge prompt, or None when the messages are not one."""
    prompt = _last_user_text(messages)
    if prompt is None or "<answer" not in prompt:
        return None
    tags = _sections(prompt)
    reply: dict[str, Any] | None = None
    scale = _JUDGE_SCALE.search(prompt)
    if scale and "answer" in tags:
        reply = _judge(tags, float(scale[1]), float(scale[2]))
    elif _RELEVANCE in prompt and "answer" in tags and "question" in tags:
        share, found, total = _share(tags["question"], tags["answer"])
        score = round(1 + 4 * share)
        reply = {"reason": f"mock judge: the answer has {found} of {total} key words of the "
                           "question", "score": score}
    elif _GROUNDED in prompt and "answer" in tags and "context" in tags:
        reply = _grounded(tags["answer"], tags["context"])
    elif _PAIRWISE in prompt and "answer_a" in tags and "answer_b" in tags:
        question = _last_line(tags.get("conversation", ""))
        a = _share(question, tags["answer_a"])[0]
        b = _share(question, tags["answer_b"])[0]
        winner = "tie" if a == b else "A" if a > b else "B"
        reply = {"reason": f"mock judge: key words of the question in answer A {a:.0%}, "
                           f"in answer B {b:.0%}", "winner": winner}
    return orjson.dumps(reply).decode() if reply is not None else None


def _sections(prompt: str) -> dict[str, str]:
    """The ``<name>\n...\n</name>`` sections of a judge prompt (two finds per known name:
    linear in the prompt, whatever it holds)."""
    out = {}
    for name in _TAGS:
        start = prompt.find(f"<{name}>\n")
        if start == -1:
            continue
        start += len(name) + 3
        end = prompt.find(f"\n</{name}>", start - 1)
        if end != -1:
            out[name] = prompt[start:end] if end >= start else ""
    return out


def _last_user_text(messages: list[Any]) -> str | None:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            return content if isinstance(content, str) else None
    return None


def _last_line(conversation: str) -> str:
    """The last ``[user]`` turn of a judge prompt's conversation."""
    turns = re.split(r"^\[(\w+)\] ", conversation, flags=re.MULTILINE)
    users = [turns[i + 1] for i in range(1, len(turns) - 1, 2) if turns[i] == "user"]
    return users[-1] if users else conversation


def _share(reference: str, answer: str) -> tuple[float, int, int]:
    """(share of the reference's key words in the answer, found, total)."""
    ref = keywords(reference)
    if not ref:
        return 0.0, 0, 0
    found = len(ref & keywords(answer))
    return found / len(ref), found, len(ref)


def _judge(tags: dict[str, str], low: float, high: float) -> dict[str, Any]:
    if tags.get("reference_answer"):
        reference, what = tags["reference_answer"], "the reference answer"
    elif tags.get("context") or tags.get("conversation"):
        reference = "\n".join([tags.get("context", ""),
                               _last_line(tags.get("conversation", ""))])
        what = "the question and context"
    else:
        reference, what = tags.get("rubric", ""), "the rubric"
    share, found, total = _share(reference, tags["answer"])
    score: float = low + (high - low) * share
    if low.is_integer() and high.is_integer():
        score = round(score)
    return {"reason": f"mock judge: the answer has {found} of {total} key words of {what}",
            "score": score}


def _grounded(answer: str, context: str) -> dict[str, Any]:
    known = keywords(context)
    claims = supported = 0
    unsupported: list[str] = []
    for sentence in _SENTENCE.split(answer):
        words = keywords(sentence)
        if not words or sentence.rstrip().endswith("?"):
            continue
        claims += 1
        if len(words & known) * 2 >= len(words):
            supported += 1
        else:
            unsupported.append(sentence.strip())
    return {"claims": claims, "supported": supported, "unsupported": unsupported[:20],
            "reason": f"mock judge: {supported} of {claims} sentences have at least half "
                      "their key words in the context"}
