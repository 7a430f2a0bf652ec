"""Deployments of a model and how a request picks one.

Strategies: ``weighted`` (random by weight), ``least-busy`` (fewest requests in flight,
ties by weight) and ``latency`` (lowest moving average of latency; deployments without a
measurement yet are tried first). Deployments whose circuit is open are skipped.
"""

from __future__ import annotations

import random
import time
from typing import Generic, TypeVar

from keel.routing.breaker import Breaker

EWMA_ALPHA = 0.2

# What a deployment calls: the gateway's Provider. Routing only carries it, so it is a type
# parameter here rather than an import of the gateway.
P = TypeVar("P")


class Deployment(Generic[P]):
    __slots__ = ("breaker", "ewma_ms", "in_flight", "model", "name", "provider", "upstream",
                 "weight")

    def __init__(self, name: str, model: str, provider: P, upstream: str, weight: float,
                 breaker: Breaker) -> None:
        self.name = name
        self.model = model
        self.provider = provider
        self.upstream = upstream
        self.weight = weight
        self.breaker = breaker
        self.in_flight = 0
        self.ewma_ms: float | None = None

    def observe_latency(self, ms: float) -> None:
        self.ewma_ms = ms if self.ewma_ms is None else (
            EWMA_ALPHA * ms + (1 - EWMA_ALPHA) * self.ewma_ms)


class Balancer(Generic[P]):
    def __init__(self, deployments: list[Deployment[P]], strategy: str,
                 rng: random.Random | None = None) -> None:
        self.deployments = deployments
        self.strategy = strategy
        self.rng = rng or random.Random()

    def pick(self, exclude: set[str] | frozenset[str] = frozenset()) -> Deployment[P] | None:
        """A deployment not in ``exclude`` whose circuit admits a request, or None."""
        now = time.monotonic()
        if len(self.deployments) == 1 and not exclude:
            only = self.deployments[0]
            return only if only.breaker.allows(now) else None
        candidates = [d for d in self.deployments
                      if d.name not in exclude and d.breaker.available(now)]
        while candidates:
            chosen = self._choose(candidates)
            if chosen.breaker.allows(now):
                return chosen
            candidates.remove(chosen)
        return None

    def untried(self, exclude: set[str]) -> bool:
        now = time.monotonic()
        return any(d.name not in exclude and d.breaker.available(now) for d in self.deployments)

    def _choose(self, candidates: list[Deployment[P]]) -> Deployment[P]:
        if len(candidates) == 1:
            return candidates[0]
        if self.strategy == "least-busy":
            low = min(d.in_flight for d in candidates)
            candidates = [d for d in candidates if d.in_flight == low]
        elif self.strategy == "latency":
            fresh = [d for d in candidates if d.ewma_ms is None]
            if fresh:
                candidates = fresh
            else:
                best = min(d.ewma_ms or 0.0 for d in candidates)
                # within 10% of the best counts as a tie, so load still spreads
                candidates = [d for d in candidates if (d.ewma_ms or 0.0) <= best * 1.1]
        if len(candidates) == 1:
            return candidates[0]
        return self.rng.choices(candidates, weights=[d.weight for d in candidates])[0]
