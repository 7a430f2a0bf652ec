"""The mock provider's tokens and their log probabilities, in OpenAI's ``logprobs`` shape.

A token is a run of letters, digits and apostrophes, or one other character, each with
the space before it; other whitespace runs are tokens of their own. The tokens of a
text, joined, are the text. Each token's probability is derived from a hash of the
answer's seed, its position and the token (between 0.35 and 0.99), so the same answer
always carries the same numbers. Its ``top_logprobs`` alternatives list the token itself
first, then other tokens from a fixed list, each half as likely as the one before out of
what the chosen token leaves: probabilities decrease and sum to less than one.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

_TOKEN = re.compile(r" ?[A-Za-z0-9']+| ?[^\sA-Za-z0-9']|\s+")
_ALTERNATIVES = (
    "the", "a", "to", "and", "of", "it", "is", "you", "that", "in", "for", "on", "your",
    "can", "be", "this", "with", "we", "if", "or", "as", "at", "by", "not", "are", "have",
    "will", "from", "an", "so", "all", "but", "then", "when", "there", "one", "more", ",",
    ".", ":",
)
MAX_TOP_LOGPROBS = 20


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _unit(seed: bytes, position: int, token: str) -> float:
    h = hashlib.blake2b(seed + position.to_bytes(4, "little") + token.encode(),
                        digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0 ** 64


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def logprobs(text: str, seed: bytes, top: int) -> list[dict[str, Any]]:
    """``choices[].logprobs.content`` for ``text``: one entry per token, ``top`` (0..20)
    alternatives each."""
    out = []
    for position, token in enumerate(tokens(text)):
        u = _unit(seed, position, token)
        p = 0.35 + 0.64 * u
        entry = _entry(token, round(math.log(p), 6))
        alts: list[dict[str, Any]] = []
        if top:
            alts.append(dict(entry))
            space = " " if token.startswith(" ") else ""
            start = int(u * len(_ALTERNATIVES))
            rest, share = 1.0 - p, 0.5
            for k in range(len(_ALTERNATIVES)):
                if len(alts) >= top:
                    break
                alt = space + _ALTERNATIVES[(start + k) % len(_ALTERNATIVES)]
                if alt == token:
                    continue
                alts.append(_entry(alt, round(math.log(rest * share), 6)))
                share /= 2
        entry["top_logprobs"] = alts
        out.append(entry)
    return out


def words(text: str) -> list[list[str]]:
    """The tokens of ``text`` grouped into stream deltas: a group begins at each token that
    starts with whitespace."""
    groups: list[list[str]] = []
    for token in tokens(text):
        if not groups or token[:1].isspace():
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups
