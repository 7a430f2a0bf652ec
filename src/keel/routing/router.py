"""Routes: which models serve a request, in which order, with which retry and cache policy.

A client names a route as its ``model``, or a route claims a feature (``features:``) and
then serves that feature's chat requests whatever model they name. A plain model name
gives a one-model plan. With several targets, the variant is chosen by weight: at random,
or, with ``sticky: user|session``, by a hash of the user or session so the same caller
keeps the same variant.

Plans are built when the router is (at config load): one per configured model and one per
variant of each route. A request picks one of them; only a route claimed by a feature under
another name gets a copy that names what the client asked for. Plans are shared, so they
are frozen and nobody changes their ``chain``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace

from keel.config import FAILURE_CLASSES, CacheSpec, RetrySpec, RouteConfig

NO_RETRIES = RetrySpec()  # frozen: one instance serves every plan without retries
ALL_FAILURES = frozenset(FAILURE_CLASSES)


@dataclass(frozen=True, slots=True)
class Plan:
    requested: str
    chain: list[str]  # shared between requests: never changed
    route: str | None = None
    variant: str | None = None
    retries: RetrySpec = NO_RETRIES
    fallback_on: frozenset[str] = ALL_FAILURES
    timeout_s: float | None = None
    attempt_timeout_s: float | None = None
    cache: CacheSpec | None = None


def _sticky_point(route: str, value: str) -> float:
    digest = hashlib.blake2b(f"{route}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class _RoutePlans:
    """A route compiled at load: its plan for each variant and where each target's share of
    [0, 1) ends."""

    __slots__ = ("bounds", "plans", "route")

    def __init__(self, route: RouteConfig) -> None:
        self.route = route
        fallback_on = frozenset(route.fallback_on)
        self.plans = {variant: Plan(
            requested=route.name, chain=[variant, *(m for m in route.fallbacks if m != variant)],
            route=route.name, variant=variant if len(route.targets) > 1 else None,
            retries=route.retries, fallback_on=fallback_on, timeout_s=route.timeout_s,
            attempt_timeout_s=route.attempt_timeout_s, cache=route.cache,
        ) for variant in dict.fromkeys(t.model for t in route.targets)}
        total = sum(t.weight for t in route.targets)
        acc = 0.0
        bounds = []
        for t in route.targets:
            acc += t.weight / total
            bounds.append((acc, t.model))
        self.bounds = tuple(bounds)

    def variant(self, point: float) -> str:
        for bound, model in self.bounds:
            if point < bound:
                return model
        return self.bounds[-1][1]


class Router:
    def __init__(self, routes: list[RouteConfig], rng: random.Random | None = None, *,
                 models: Iterable[str] = ()) -> None:
        self.routes = {r.name: r for r in routes}
        self.by_feature = {f: r for r in routes for f in r.features}
        self.rng = rng or random.Random()
        # every plan a request can get, built once: models by name, routes by variant
        self._model_plans = {m: Plan(requested=m, chain=[m]) for m in models}
        self._route_plans = {r.name: _RoutePlans(r) for r in routes}

    def route_for(self, requested: str, feature: str | None) -> RouteConfig | None:
        route = self.routes.get(requested)
        if route is None and feature is not None:
            route = self.by_feature.get(feature)
        return route

    def plan(self, requested: str, route: RouteConfig | None, *, user: str | None = None,
             session: str | None = None) -> Plan:
        if route is None:
            plan = self._model_plans.get(requested)
            return plan if plan is not None else Plan(requested=requested, chain=[requested])
        compiled = self._route_plans.get(route.name)
        if compiled is None or compiled.route is not route:
            compiled = _RoutePlans(route)  # a route this router was not built with
        if len(route.targets) == 1:
            variant = route.targets[0].model
        else:
            key = user if route.sticky == "user" else \
                session if route.sticky == "session" else None
            variant = compiled.variant(_sticky_point(route.name, key) if key
                                       else self.rng.random())
        plan = compiled.plans[variant]
        return plan if plan.requested == requested else replace(plan, requested=requested)
