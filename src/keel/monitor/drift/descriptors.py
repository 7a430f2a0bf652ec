"""Per-trace descriptors, read from a trace-like dict.

``describe(trace)`` takes a dict with the stored trace's fields (``id``, ``request_body``
with OpenAI ``messages``, ``response_body`` a ``chat.completion``; optionally
``latency_ms``, ``usage`` and ``guard``; ``request`` / ``response`` are accepted for the
bodies too) and returns a :class:`Described`: the request's text (the user messages),
the answer's text, and descriptors:

* numeric: ``request_chars``, ``request_words``, ``response_chars``, ``response_words``,
  ``latency_ms``, ``prompt_tokens``, ``completion_tokens`` (None when absent);
* categorical: ``language`` (of the request), ``refusal`` (``yes``/``no``),
  ``guardrail_hit`` (``yes`` when a guardrail scanner found something);
* a bag: ``tool_calls``, the names of the tools the answer called (``(none)`` when it
  called none), compared as a categorical of call names.

Callers add their own numeric descriptors (judge or eval scores) to ``values``.

``language`` is a heuristic, no model: the script of most letters (Latin, Cyrillic, Greek,
Arabic, Hebrew, Devanagari, Thai, Hangul: ``ko``, kana: ``ja``, Han without kana: ``zh``),
and for Latin text the language among en/de/fr/es with the most hits in a short stopword
list (two hits at least), else ``latin``. ``und`` when there are no letters.

``refusal`` is ``yes`` when the answer carries an OpenAI ``refusal``, or its text starts
(within its first 200 characters) with one of a short list of refusal phrases.
``oov_share`` (the share of a text's words outside a vocabulary) is computed by the
evaluation, against the reference window's vocabulary (``vocabulary`` / ``oov_share``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keel.text import answer_text, content_text

Value = float | str | tuple[str, ...] | None

_WORD = re.compile(r"\w+")
_SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x024F, "latin"), (0x0370, 0x03FF, "greek"), (0x0400, 0x052F, "cyrillic"),
    (0x0590, 0x05FF, "hebrew"), (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0E00, 0x0E7F, "thai"), (0x1E00, 0x1EFF, "latin"),
    (0x3040, 0x30FF, "kana"), (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"),
    (0xAC00, 0xD7AF, "ko"), (0xF900, 0xFAFF, "han"),
)
_STOPWORDS = {
    "en": frozenset(_WORD.findall("the and is are was to of in that it you for with this what how "
                    "can not be have on my")),
    "de": frozenset(_WORD.findall("der die das und ist nicht ich sie mit ein eine zu den wie was "
                    "auf für ist wir")),
    "fr": frozenset(_WORD.findall("le la les et est une un des pas je vous que qui dans pour avec "
                    "du ce sur")),
    "es": frozenset(_WORD.findall("el la los las y es una un que no en por para con del se mi "
                    "como está")),
}
REFUSALS = (  # matched after curly apostrophes are made straight
    "i can't help", "i cannot help", "i can't assist", "i cannot assist",
    "i'm sorry, but i can", "i am sorry, but i can",
    "i'm unable to", "i am unable to", "i'm not able to", "i am not able to",
    "i won't be able to", "i will not be able to", "i can't provide", "i cannot provide",
    "i can't do that", "i cannot do that", "i must decline", "as an ai", "i'm not allowed to",
)
NO_TOOL = "(none)"


def _script(ch: str) -> str | None:
    cp = ord(ch)
    if cp < 0x41:
        return None
    for lo, hi, name in _SCRIPTS:
        if lo <= cp <= hi:
            return name if ch.isalpha() else None
    return None


def language(text: str) -> str:
    """A script-and-stopword guess at the language of ``text`` (see the module doc)."""
    counts: Counter[str] = Counter()
    for ch in text[:2000]:
        s = _script(ch)
        if s is not None:
            counts[s] += 1
    if not counts:
        return "und"
    top = counts.most_common(1)[0][0]
    if top in ("han", "kana"):
        return "ja" if counts["kana"] else "zh"
    if top != "latin":
        return top
    words = _WORD.findall(text[:2000].lower())
    hits = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(hits, key=lambda k: (hits[k], k == "en"))
    return best if hits[best] >= 2 else "latin"


def is_refusal(text: str) -> bool:
    head = text[:200].lower().replace("\u2019", "'")
    return any(p in head for p in REFUSALS)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """The set of lower-cased words of ``texts``."""
    vocab: set[str] = set()
    for t in texts:
        vocab.update(words(t))
    return frozenset(vocab)


def oov_share(text: str, vocab: frozenset[str]) -> float | None:
    """The share of the words of ``text`` not in ``vocab``; None for a text with none."""
    ws = words(text)
    if not ws:
        return None
    return sum(1 for w in ws if w not in vocab) / len(ws)


@dataclass(frozen=True, slots=True)
class Described:
    """One trace, described: its id, its texts and its descriptor values."""

    id: str
    text: str
    response: str = ""
    values: dict[str, Value] = field(default_factory=dict)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def describe(trace: Mapping[str, Any]) -> Described:
    """The descriptors of one trace-like dict (see the module doc)."""
    request = trace.get("request_body", trace.get("request"))
    response = trace.get("response_body", trace.get("response"))
    messages = request.get("messages") if isinstance(request, dict) else None
    user_parts = [content_text(m.get("content")) for m in messages or ()
                  if isinstance(m, dict) and m.get("role") == "user"]
    text = "\n".join(p for p in user_parts if p)
    answer = answer_text(response) or ""
    refused = False
    tools: list[str] = []
    if isinstance(response, dict):
        choices = response.get("choices")
        message = choices[0].get("message") if isinstance(choices, list) and choices and \
            isinstance(choices[0], dict) else None
        if isinstance(message, dict):
            refused = bool(message.get("refusal"))
            for call in message.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                    tools.append(fn["name"])
    usage = trace.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    guard = trace.get("guard")
    values: dict[str, Value] = {
        "request_chars": float(len(text)),
        "request_words": float(len(words(text))),
        "response_chars": float(len(answer)),
        "response_words": float(len(words(answer))),
        "latency_ms": _num(trace.get("latency_ms")),
        "prompt_tokens": _num(usage.get("prompt_tokens")),
        "completion_tokens": _num(usage.get("completion_tokens")),
        "language": language(text),
        "refusal": "yes" if refused or is_refusal(answer) else "no",
        "guardrail_hit": None if guard is None else ("yes" if guard else "no"),
        "tool_calls": tuple(sorted(tools)) or (NO_TOOL,),
    }
    return Described(str(trace.get("id", "")), text, answer, values)
