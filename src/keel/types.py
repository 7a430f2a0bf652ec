"""Shared value types. A leaf module: it imports nothing from keel.

The gateway speaks the OpenAI chat format internally: every inbound protocol is
translated to it, and every provider adapter translates from it. Bodies stay plain
``dict`` objects (parsed by orjson) on the hot path; these dataclasses carry the
handful of facts keel itself needs to act on.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


class _RandomPool:
    """Cryptographic random bytes read 16 KiB at a time: one syscall per 1,638 ids."""

    __slots__ = ("buf", "pos")

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            self.buf, self.pos = os.urandom(16384), 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


_POOL = _RandomPool()
if hasattr(os, "register_at_fork"):
    # A forked child must not hand out the parent's remaining bytes again.
    os.register_at_fork(after_in_child=lambda: setattr(_POOL, "buf", b""))


def new_trace_id() -> str:
    """A 32-hex-char id that sorts by creation time (48-bit ms clock + 80 random bits)."""
    return f"{time.time_ns() // 1_000_000:012x}{_POOL.take(10).hex()}"


def trace_id_at(seconds: float) -> str:
    """A trace id as ``new_trace_id`` makes, for a trace that starts at ``seconds`` (epoch)
    on a clock other than the system's (calls from inside keel on a simulated clock), so it
    sorts by that time."""
    return f"{int(seconds * 1000):012x}{_POOL.take(10).hex()}"


@dataclass(slots=True)
class Usage:
    """Token counts for one call, in the provider-neutral form keel prices and stores.

    ``input_tokens`` includes ``cached_tokens`` and ``cache_write_tokens``;
    ``output_tokens`` includes ``reasoning_tokens`` (the OpenAI convention).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: JSON | None) -> Usage:
        if not usage:
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )

    def to_openai(self) -> JSON:
        out: JSON = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        if self.cached_tokens or self.cache_write_tokens:
            details: JSON = {"cached_tokens": self.cached_tokens}
            if self.cache_write_tokens:
                details["cache_write_tokens"] = self.cache_write_tokens
            out["prompt_tokens_details"] = details
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(slots=True, frozen=True)
class PriceTier:
    """Rates for a whole request whose input exceeds ``above_input_tokens`` (long-context
    pricing). Unset rates keep the base price's values."""

    above_input_tokens: int
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    reasoning_per_mtok: float | None = None


@dataclass(slots=True, frozen=True)
class Price:
    """USD per million tokens, plus an optional fixed fee per request.

    Cached input and cache writes cost the input rate unless priced; reasoning tokens are
    part of ``Usage.output_tokens`` and cost the output rate unless ``reasoning_per_mtok``
    is set (then the rest of the output costs the output rate). When ``tiers`` are given,
    the tier with the highest threshold below the request's input tokens prices the whole
    request.
    """

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    reasoning_per_mtok: float | None = None
    per_request_usd: float = 0.0
    tiers: tuple[PriceTier, ...] = ()
    # (threshold, the base price with the tier's rates), highest threshold first
    _tiered: tuple[tuple[int, Price], ...] = field(
        default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tiers:
            resolved = tuple(
                (t.above_input_tokens, Price(
                    input_per_mtok=(self.input_per_mtok if t.input_per_mtok is None
                                    else t.input_per_mtok),
                    output_per_mtok=(self.output_per_mtok if t.output_per_mtok is None
                                     else t.output_per_mtok),
                    cached_input_per_mtok=_or(t.cached_input_per_mtok,
                                              self.cached_input_per_mtok),
                    cache_write_per_mtok=_or(t.cache_write_per_mtok, self.cache_write_per_mtok),
                    reasoning_per_mtok=_or(t.reasoning_per_mtok, self.reasoning_per_mtok),
                    per_request_usd=self.per_request_usd))
                for t in self.tiers)
            object.__setattr__(self, "_tiered",
                               tuple(sorted(resolved, key=lambda x: x[0], reverse=True)))

    def cost(self, usage: Usage) -> float:
        p = self
        if self._tiered:
            n = usage.input_tokens
            for above, tier in self._tiered:
                if n > above:
                    p = tier
                    break
        rate = p.input_per_mtok
        cached = usage.cached_tokens
        written = usage.cache_write_tokens
        fresh = usage.input_tokens - cached - written
        total = fresh * rate if fresh > 0 else 0.0
        if cached:
            total += cached * (rate if p.cached_input_per_mtok is None
                               else p.cached_input_per_mtok)
        if written:
            total += written * (rate if p.cache_write_per_mtok is None
                                else p.cache_write_per_mtok)
        out = usage.output_tokens
        reasoning = usage.reasoning_tokens
        if reasoning and p.reasoning_per_mtok is not None:
            if reasoning > out:  # output includes reasoning; never price it twice
                reasoning = out
            total += (out - reasoning) * p.output_per_mtok + reasoning * p.reasoning_per_mtok
        else:
            total += out * p.output_per_mtok
        return total / 1_000_000 + p.per_request_usd


def _or(value: float | None, default: float | None) -> float | None:
    return default if value is None else value


# Roles on the admin API, from most to least power (what each may do: keel.server.auth);
# ``metrics`` may only read GET /metrics (a Prometheus scraper's key).
ROLES: tuple[str, ...] = ("admin", "operator", "reviewer", "auditor", "viewer", "metrics")


@dataclass(slots=True)
class Principal:
    """Who is calling: an admin (master key) or a virtual key.

    A gateway key, a feedback key and a team-scoped role key read their own team's data
    only; :meth:`visible_team` says which."""

    key_id: str | None
    team: str
    feature: str | None
    models: tuple[str, ...] | None  # None: every model
    feature_override: bool
    is_admin: bool = False
    scope: str | None = None  # None: a gateway key; "feedback": may only write feedback
    role: str | None = None  # the role on the admin API (keel.server.auth); None: no /api
    # a role key that reads every team's data; False: its own team's only (admin keys: True)
    org_wide: bool = False

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    def visible_team(self) -> str | None:
        """The one team whose traces, feedback, spend, measures and reviews the caller may
        read, or None when it reads every team's (the master key, admin keys, org-wide role
        keys). Every reader of per-team data asks this, and nothing else."""
        return None if self.is_admin or self.org_wide else self.team


@dataclass(slots=True)
class ChatResult:
    """A finished non-streaming chat call, already in OpenAI ``chat.completion`` form."""

    body: JSON
    usage: Usage
    served_model: str
    # the upstream's own bytes of ``body`` when the adapter changed nothing in it (None
    # otherwise): an answer passed on unchanged is sent as these, not serialised again
    raw: bytes | None = None


@dataclass(slots=True)
class EmbeddingResult:
    body: JSON  # OpenAI ``list`` of ``embedding`` objects
    usage: Usage
    served_model: str


@dataclass(slots=True)
class Trace:
    """One request, as stored. Built on the hot path, written by the background writer."""

    id: str
    start_time: float
    endpoint: str
    key_id: str | None = None
    team: str | None = None
    feature: str | None = None
    user: str | None = None
    session: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    model_requested: str | None = None
    model_served: str | None = None
    provider: str | None = None
    attempts: int = 0
    status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    end_time: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    stream: bool = False
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    request_body: JSON | None = None
    response_body: JSON | None = None
    route: str | None = None
    variant: str | None = None
    attempt_log: list[JSON] | None = None
    cache_hit: bool = False
    cost_saved_usd: float = 0.0
    prompt_name: str | None = None
    prompt_version: int | None = None
    source: str | None = None  # None: the gateway; "otlp": ingested OpenTelemetry spans
    policy: str | None = None  # the guardrail policy that governed the request
    policy_version: str | None = None  # its content hash
    guard_ms: float | None = None  # time spent in its scanners
    guard: list[JSON] | None = None  # what they found and did (spans, never text)
    request_id: str | None = None  # the x-request-id the answer carried (HTTP requests)
    mono_start: float = field(default_factory=time.perf_counter)

    def mark_first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.mono_start) * 1000.0

    def finish(
        self, status: int, error_type: str | None = None, message: str | None = None
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.error_message = message
        self.latency_ms = (time.perf_counter() - self.mono_start) * 1000.0
        self.end_time = self.start_time + self.latency_ms / 1000.0
