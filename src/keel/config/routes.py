"""The routes: section: weighted targets, fallbacks and the failures that trigger them,
retries, timeouts and the response cache of a route."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keel.config.base import _Strict

FailureClass = Literal["rate_limit", "server_error", "timeout", "connection", "content_filter"]
FAILURE_CLASSES: tuple[FailureClass, ...] = ("rate_limit", "server_error", "timeout", "connection",
                                    "content_filter")


class TargetSpec(_Strict):
    model: str
    weight: float = Field(1.0, gt=0)


class RetrySpec(_Strict):
    attempts: int = Field(0, ge=0, le=10, description="Retries per model after the first try.")
    backoff_ms: float = Field(200.0, ge=0)
    max_backoff_ms: float = Field(5000.0, ge=0)


class CacheSpec(_Strict):
    mode: Literal["exact", "semantic"] = "exact"
    ttl_s: float = Field(3600.0, gt=0)
    threshold: float = Field(0.95, gt=0, le=1, description="Semantic: cosine similarity.")
    embedding_model: str | None = Field(None, description="Semantic: the embedding model.")
    multi_turn: bool = Field(False, description="Semantic: also cache multi-turn/tool traffic.")
    scope: Literal["team", "key", "shared"] = Field(
        "team", description="Who may be served an answer cached for someone else.")


class RouteConfig(_Strict):
    name: str = Field(description="Clients send it as 'model'.")
    features: list[str] = Field(default_factory=list,
                                description="Requests of these features use this route.")
    targets: list[TargetSpec]
    sticky: Literal["user", "session"] | None = None
    fallbacks: list[str] = Field(default_factory=list)
    fallback_on: list[FailureClass] = Field(default_factory=lambda: list(FAILURE_CLASSES))
    retries: RetrySpec = Field(default_factory=RetrySpec)
    timeout_s: float | None = Field(None, gt=0, description="Total time for all attempts.")
    attempt_timeout_s: float | None = Field(None, gt=0, description="Time for one attempt.")
    cache: CacheSpec | None = None
