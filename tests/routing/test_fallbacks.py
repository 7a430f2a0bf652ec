"""Fallbacks, retries, timeouts, circuit breakers and load balancing against a
fault-injecting upstream, through a running keel, with traces that say what happened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.fault_upstream import FaultUpstream
from tests.support.keel import Keel, running_keel
from tests.support.servers import serve

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def ups() -> Iterator[tuple[FaultUpstream, FaultUpstream, str, str]]:
    a, b = FaultUpstream("A"), FaultUpstream("B")
    with serve(a.app) as sa, serve(b.app) as sb:
        yield a, b, sa.url, sb.url


def config(url_a: str, url_b: str) -> dict[str, Any]:
    retry = {"attempts": 1, "backoff_ms": 10, "max_backoff_ms": 2000}
    return {
        "providers": [{"name": "A", "kind": "openai", "base_url": url_a + "/v1", "timeout_s": 5},
                      {"name": "B", "kind": "openai", "base_url": url_b + "/v1", "timeout_s": 5}],
        "models": [
            {"name": "a", "provider": "A", "breaker": {"failures": 3, "cooldown_s": 30},
             "price": {"input_per_mtok": 1, "output_per_mtok": 1}},
            {"name": "b", "provider": "B", "price": {"input_per_mtok": 2, "output_per_mtok": 2}},
            {"name": "lb", "balance": "weighted", "deployments": [
                {"name": "east", "provider": "A"}, {"name": "west", "provider": "B"}]},
        ],
        "routes": [
            {"name": "chain", "targets": [{"model": "a"}], "fallbacks": ["b"], "retries": retry,
             "attempt_timeout_s": 0.5},
            {"name": "no-429-fallback", "targets": [{"model": "a"}], "fallbacks": ["b"],
             "fallback_on": ["server_error", "timeout", "connection"]},
            {"name": "tight", "targets": [{"model": "a"}], "fallbacks": ["b"], "timeout_s": 0.4},
            {"name": "billing-route", "features": ["billing"], "targets": [{"model": "b"}]},
        ],
    }


@pytest.fixture
def env(tmp_path: Path, ups: tuple[FaultUpstream, FaultUpstream, str, str]
        ) -> Iterator[tuple[Keel, FaultUpstream, FaultUpstream]]:
    a, b, url_a, url_b = ups
    a.reset()
    b.reset()
    with running_keel(tmp_path, config(url_a, url_b)) as k:
        yield k, a, b


def chat(k: Keel, model: str, **kw: Any) -> httpx.Response:
    return httpx.post(k.base_url + "/chat/completions", json={"model": model, "messages": USER,
                                                              **kw},
                      headers={**k.admin_headers(), **kw.pop("headers", {})}, timeout=20)


def trace(k: Keel, r: httpx.Response) -> dict[str, Any]:
    k.flush()
    return dict(httpx.get(f"{k.url}/api/traces/{r.headers['x-keel-trace-id']}",
                          headers=k.admin_headers()).json())


def attempts(t: dict[str, Any]) -> list[tuple[str | None, int, str | None]]:
    return [(a["deployment"], a["status"], a["error_type"]) for a in t["attempt_log"]]


def test_429_is_retried_then_falls_back_and_the_trace_tells(env: Any) -> None:
    k, a, _ = env
    a.script("a", ["status:429", "status:429"])
    r = chat(k, "chain")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == \
        "answer from B/b"
    t = trace(k, r)
    assert attempts(t) == [("a:A/a", 429, "upstream_rate_limited"),
                           ("a:A/a", 429, "upstream_rate_limited"), ("b:B/b", 200, None)]
    assert (t["route"], t["provider"], t["attempts"], t["status"]) == ("chain", "B", 3, 200)
    assert t["cost_usd"] == pytest.approx(15 * 2 / 1e6)  # priced as the model that served


def test_retry_waits_at_least_retry_after(env: Any) -> None:
    k, a, _ = env
    a.script("a", ["status:503:0.3"])
    r = chat(k, "chain")
    assert r.status_code == 200
    first, second = [s["time"] for s in a.seen]
    assert second - first >= 0.3
    assert [x[1] for x in attempts(trace(k, r))] == [502, 200]


def test_retry_after_beyond_the_cap_falls_back_without_waiting(env: Any) -> None:
    k, a, b = env
    a.script("a", ["status:429:60"])
    r = chat(k, "chain")
    assert r.status_code == 200 and a.count("a") == 1 and b.count("b") == 1


def test_client_fault_is_never_retried_or_fallen_back(env: Any) -> None:
    k, a, b = env
    a.script("a", ["status:400"])
    r = chat(k, "chain")
    assert r.status_code == 400 and "injected 400" in r.json()["error"]["message"]
    assert a.count("a") == 1 and b.count("b") == 0


def test_fallback_only_on_configured_classes(env: Any) -> None:
    k, a, b = env
    a.script("a", ["status:429"])
    r = chat(k, "no-429-fallback")
    assert r.status_code == 429 and b.count("b") == 0
    a.script("a", ["status:500"])
    assert chat(k, "no-429-fallback").status_code == 200 and b.count("b") == 1


def test_content_filter_refusal_falls_back(env: Any) -> None:
    k, a, _ = env
    a.script("a", ["filter"])
    r = chat(k, "chain")
    assert r.json()["choices"][0]["message"]["content"] == "answer from B/b"
    assert [x[2] for x in attempts(trace(k, r))] == ["content_filter", None]


@pytest.mark.parametrize("fault", ["hang", "reset", "garbage"])
def test_hang_reset_and_garbage_fall_back(env: Any, fault: str) -> None:
    k, a, _ = env
    a.script("a", [fault, fault])
    r = chat(k, "chain")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == \
        "answer from B/b"
    expected = {"hang": "upstream_timeout", "reset": "upstream_connection_reset",
                "garbage": "upstream_bad_response"}[fault]
    assert attempts(trace(k, r))[0][2] == expected


def test_total_timeout_bounds_all_attempts(env: Any) -> None:
    k, a, _ = env
    a.script("a", ["slow:2000"])
    r = chat(k, "tight")
    assert r.status_code == 504
    assert "0.4s total timeout" in r.json()["error"]["message"]


def test_stream_falls_back_before_the_first_byte(env: Any) -> None:
    k, a, _ = env
    a.script("a", ["status:500", "status:500"])
    c = openai.OpenAI(base_url=k.base_url, api_key=k.admin_key, max_retries=0)
    text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="chain", messages=USER, stream=True) if ch.choices)  # type: ignore[arg-type]
    assert text == "answer from B/b"


def test_stream_broken_after_first_byte_is_not_retried(env: Any) -> None:
    k, a, b = env
    a.script("a", ["stream_reset"])
    with httpx.stream("POST", k.base_url + "/chat/completions", headers=k.admin_headers(),
                      json={"model": "chain", "messages": USER, "stream": True}) as resp:
        trace_id = resp.headers["x-keel-trace-id"]
        lines = [ln for ln in resp.iter_lines() if ln.startswith("data: ")]
    assert '"error"' in lines[-1] and "answer" in "".join(lines[:-1])
    assert b.count("b") == 0
    k.flush()
    t = httpx.get(f"{k.url}/api/traces/{trace_id}", headers=k.admin_headers()).json()
    assert t["error_type"] == "upstream_stream_broken" and t["attempts"] == 1
    assert t["tags"].get("keel.usage") == "estimated" and t["output_tokens"] > 0


def test_circuit_opens_and_requests_skip_the_deployment(env: Any) -> None:
    k, a, _ = env
    a.script("a", ["status:500"] * 3)
    for _ in range(3):
        assert chat(k, "a").status_code == 502
    r = chat(k, "a")
    assert r.status_code == 503 and r.json()["error"]["code"] == "circuit_open"
    assert a.count("a") == 3  # the fourth never reached the upstream
    r = chat(k, "chain")  # a route falls back past the open circuit
    assert r.status_code == 200 and attempts(trace(k, r))[0][2] == "circuit_open"


def test_failed_deployment_is_retried_on_another_deployment_at_once(env: Any) -> None:
    k, a, _ = env
    a.script("lb", ["status:500"])
    for _ in range(30):  # until the balancer happens to pick east first
        t = trace(k, chat(k, "lb"))
        if len(t["attempt_log"]) == 2:
            break
    assert attempts(t) == [("lb:east", 502, "upstream_error"), ("lb:west", 200, None)]
    assert t["status"] == 200


def test_weighted_deployments_share_the_load(env: Any) -> None:
    k, _, _ = env
    counts = {"A": 0, "B": 0}
    for _ in range(40):
        counts[trace(k, chat(k, "lb"))["provider"]] += 1
    assert counts["A"] > 5 and counts["B"] > 5


def test_one_deployment_down_the_twin_serves(env: Any) -> None:
    k, a, _ = env
    a.script("lb", ["status:500"] * 20)
    for _ in range(6):
        r = chat(k, "lb")
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == "answer from B/lb"


def test_feature_route_serves_that_feature(env: Any) -> None:
    k, _, _ = env
    r = chat(k, "a", headers={"x-keel-feature": "billing"})
    assert r.json()["choices"][0]["message"]["content"] == "answer from B/b"
    t = trace(k, r)
    assert (t["route"], t["model_requested"], t["feature"]) == ("billing-route", "a", "billing")


def test_routes_are_listed_as_models(env: Any) -> None:
    k, _, _ = env
    c = openai.OpenAI(base_url=k.base_url, api_key=k.admin_key)
    ids = {m.id for m in c.models.list()}
    assert {"a", "b", "lb", "chain", "tight", "billing-route"} <= ids
