"""Routes: which models serve a request, in which order, with which retry and cache policy.

A client names a route as its ``model``, or a route claims a feature (``features:``) and
then serves that feature's chat requests whatever model they name. A plain model name
gives a one-model plan. With several targets, the variant is chosen by weight: at random,
or, with ``sticky: user|session``, by a hash of the user or session so the same caller
keeps the same variant.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from keel.config import FAILURE_CLASSES, CacheSpec, RetrySpec, RouteConfig


@dataclass(slots=True)
class Plan:
    requested: str
    chain: list[str]
    route: str | None = None
    variant: str | None = None
    retries: RetrySpec = field(default_factory=RetrySpec)
    fallback_on: frozenset[str] = frozenset(FAILURE_CLASSES)
    timeout_s: float | None = None
    attempt_timeout_s: float | None = None
    cache: CacheSpec | None = None


def _sticky_point(route: str, value: str) -> float:
    digest = hashlib.blake2b(f"{route}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Router:
    def __init__(self, routes: list[RouteConfig], rng: random.Random | None = None) -> None:
        self.routes = {r.name: r for r in routes}
        self.by_feature = {f: r for r in routes for f in r.features}
        self.rng = rng or random.Random()

    def route_for(self, requested: str, feature: str | None) -> RouteConfig | None:
        route = self.routes.get(requested)
        if route is None and feature is not None:
            route = self.by_feature.get(feature)
        return route

    def plan(self, requested: str, route: RouteConfig | None, *, user: str | None = None,
             session: str | None = None) -> Plan:
        if route is None:
            return Plan(requested=requested, chain=[requested])
        variant = self._variant(route, user, session)
        chain = [variant, *(m for m in route.fallbacks if m != variant)]
        return Plan(
            requested=requested, chain=chain, route=route.name,
            variant=variant if len(route.targets) > 1 else None,
            retries=route.retries, fallback_on=frozenset(route.fallback_on),
            timeout_s=route.timeout_s, attempt_timeout_s=route.attempt_timeout_s,
            cache=route.cache,
        )

    def _variant(self, route: RouteConfig, user: str | None, session: str | None) -> str:
        targets = route.targets
        if len(targets) == 1:
            return targets[0].model
        key = user if route.sticky == "user" else session if route.sticky == "session" else None
        point = _sticky_point(route.name, key) if key else self.rng.random()
        total = sum(t.weight for t in targets)
        acc = 0.0
        for t in targets:
            acc += t.weight / total
            if point < acc:
                return t.model
        return targets[-1].model
