"""Breakers, balancing strategies and routes, with fixed clocks and seeded randomness."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from keel.config import BreakerSpec, RouteConfig
from keel.routing import Balancer, Breaker, Deployment, Router


def breaker(**kw: Any) -> Breaker:
    return Breaker("d", BreakerSpec(**kw))


def test_breaker_opens_after_consecutive_failures_then_probes_and_closes() -> None:
    b = breaker(failures=3, cooldown_s=10)
    assert not b.record(False, now=0) and not b.record(False, now=1)
    assert b.record(False, now=2)  # the third opens it
    assert not b.allows(now=5)
    assert b.allows(now=12.5)  # cooldown over: one probe
    assert not b.allows(now=12.6)  # only one probe at a time
    b.record(True, now=13)
    assert b.state == "closed" and b.allows(now=13)


def test_failed_probe_reopens_for_another_cooldown() -> None:
    b = breaker(failures=1, cooldown_s=10)
    b.record(False, now=0)
    assert b.allows(now=11)
    assert b.record(False, now=11)
    assert not b.allows(now=20) and b.allows(now=21.5)


def test_breaker_opens_on_failure_rate_over_window() -> None:
    b = breaker(failures=100, failure_rate=0.5, window_s=60, min_requests=10)
    for i in range(10):
        b.record(i % 5 != 0, now=i)  # 2 failures in 10: 20%
    assert b.state == "closed"
    opened_at = next(k for k in range(1, 20) if b.record(False, now=10 + k))
    assert opened_at == 6  # (2 + 6) / (10 + 6) = 50%
    assert b.state == "open"


def test_old_events_leave_the_window() -> None:
    b = breaker(failures=100, failure_rate=0.5, window_s=10, min_requests=4)
    for i in range(3):
        b.record(False, now=i)
    assert b.state == "closed"  # 3 < min_requests
    assert not b.record(True, now=100)  # the old failures fell out of the window
    assert b.state == "closed"


class _P:
    def __init__(self, name: str) -> None:
        self.name = name


def deployments(*weights: float, spec: BreakerSpec | None = None) -> list[Deployment]:
    return [Deployment(f"d{i}", "m", _P(f"p{i}"), "up", w,  # type: ignore[arg-type]
                       Breaker(f"d{i}", spec or BreakerSpec())) for i, w in enumerate(weights)]


def test_weighted_balancing_follows_weights() -> None:
    bal = Balancer(deployments(3, 1), "weighted", random.Random(1))
    counts = Counter(bal.pick().name for _ in range(4000))  # type: ignore[union-attr]
    assert 0.71 < counts["d0"] / 4000 < 0.79


def test_least_busy_picks_the_idlest() -> None:
    deps = deployments(1, 1, 1)
    deps[0].in_flight, deps[1].in_flight, deps[2].in_flight = 5, 1, 3
    assert Balancer(deps, "least-busy").pick().name == "d1"  # type: ignore[union-attr]


def test_latency_strategy_explores_then_prefers_the_fastest() -> None:
    deps = deployments(1, 1)
    bal = Balancer(deps, "latency", random.Random(2))
    deps[0].observe_latency(50)
    assert bal.pick().name == "d1"  # type: ignore[union-attr]  # unmeasured first
    deps[1].observe_latency(200)
    assert {bal.pick().name for _ in range(20)} == {"d0"}  # type: ignore[union-attr]


def test_open_circuits_are_skipped_and_exclusions_respected() -> None:
    deps = deployments(1, 1, spec=BreakerSpec(failures=1))
    bal = Balancer(deps, "weighted")
    deps[0].breaker.record(False)
    assert {bal.pick().name for _ in range(20)} == {"d1"}  # type: ignore[union-attr]
    assert bal.pick({"d1"}) is None
    assert not bal.untried({"d1"})


def route(**kw: Any) -> RouteConfig:
    return RouteConfig.model_validate({"name": "support", **kw})


def test_route_chain_is_variant_then_fallbacks() -> None:
    r = Router([route(targets=[{"model": "a"}], fallbacks=["b", "c"])])
    plan = r.plan("support", r.route_for("support", None))
    assert plan.chain == ["a", "b", "c"] and plan.route == "support" and plan.variant is None


def test_weighted_variants_split_and_sticky_users_stay_put() -> None:
    r = Router([route(targets=[{"model": "a", "weight": 90}, {"model": "b", "weight": 10}],
                      sticky="user")], rng=random.Random(3))
    rc = r.route_for("support", None)
    users = Counter(r.plan("support", rc, user=f"u{i}").variant for i in range(5000))
    assert 0.87 < users["a"] / 5000 < 0.93
    assert {r.plan("support", rc, user="alice").variant for _ in range(50)} == \
        {r.plan("support", rc, user="alice").variant}
    unsticky = Router([route(targets=[{"model": "a"}, {"model": "b"}])], rng=random.Random(4))
    seen = {unsticky.plan("support", unsticky.route_for("support", None)).variant
            for _ in range(50)}
    assert seen == {"a", "b"}


def test_feature_routes_apply_whatever_model_is_named() -> None:
    r = Router([route(targets=[{"model": "a"}], features=["support"])])
    assert r.route_for("gpt-4o", "support") is not None
    assert r.route_for("gpt-4o", "search") is None
    assert r.plan("gpt-4o", None).chain == ["gpt-4o"]


@pytest.mark.parametrize(("bad", "words"), [
    ({"targets": [{"model": "nope"}]}, "routes[0].targets[0].model: unknown chat model 'nope'"),
    ({"targets": [{"model": "m"}], "fallbacks": ["x"]}, "routes[0].fallbacks[0]: unknown"),
    ({"targets": []}, "at least one target"),
    ({"targets": [{"model": "m"}], "cache": {"mode": "semantic"}}, "needs an embedding model"),
    ({"targets": [{"model": "m"}], "name": "m"}, "has a model's name"),
])
def test_route_config_errors(bad: dict[str, Any], words: str) -> None:
    from keel.config import parse_config
    from keel.errors import ConfigError

    cfg = {"providers": [{"name": "p", "kind": "mock"}],
           "models": [{"name": "m", "provider": "p"}],
           "routes": [{"name": "r", **bad}]}
    with pytest.raises(ConfigError) as info:
        parse_config(cfg, "keel.yaml")
    assert words in info.value.message
