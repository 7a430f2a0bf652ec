"""The gateway's replies as the runner treats them: a transient error retried after a
backoff (or the upstream's Retry-After), and an answer kept in the result cache under the
key of the request that was sent."""

from __future__ import annotations

import contextlib
import hashlib

import orjson

from keel.backoff import Backoff
from keel.errors import KeelError, RateLimited, UpstreamError, UpstreamRejected
from keel.gateway.calls import Reply
from keel.types import JSON

RETRY = Backoff(base=0.25, cap=8.0)  # 0.25 s doubling, at most 8 s; a Retry-After up to 30 s


def request_key(body: JSON, salt: str) -> str:
    """The result-cache key: the request exactly as it would be sent, plus ``salt``."""
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw + b"\0" + salt.encode()).hexdigest()


def transient(exc: KeelError) -> bool:
    """Worth retrying: provider trouble and keel's own rate limits, not bad requests or
    exhausted budgets."""
    return isinstance(exc, UpstreamError | RateLimited) and not isinstance(exc, UpstreamRejected)


def retry_delay(exc: KeelError, attempt: int) -> float:
    after = exc.headers.get("retry-after") or exc.headers.get("Retry-After")
    if after:
        with contextlib.suppress(ValueError):
            return min(30.0, float(after))
    return RETRY.delay(attempt)


def cacheable(body: JSON, *, judge: bool = False) -> bool:
    """Whether an answer may be replayed by later runs: not a content-filter refusal (often
    a one-off), and for a judge not a reply cut off at max_tokens (it holds no verdict)."""
    reasons = {c.get("finish_reason") for c in body.get("choices") or ()}
    return "content_filter" not in reasons and not (judge and "length" in reasons)


def reply_to_cache(reply: Reply) -> str:
    return orjson.dumps({"body": reply.body, "latency_ms": reply.latency_ms,
                         "cost_usd": reply.cost_usd, "input_tokens": reply.input_tokens,
                         "output_tokens": reply.output_tokens, "model": reply.model}).decode()


def reply_from_cache(raw: str) -> Reply:
    d = orjson.loads(raw)
    return Reply(body=d["body"], trace_id="", latency_ms=d["latency_ms"],
                 cost_usd=d["cost_usd"], input_tokens=d["input_tokens"],
                 output_tokens=d["output_tokens"], model=d.get("model"))
