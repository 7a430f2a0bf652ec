"""Response cache, rate limits and budgets through a running keel (memory and Redis)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.keel import Keel, running_keel

Q = [{"role": "user", "content": "How do I reset my password?"}]


def config(**extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "providers": [{"name": "mock", "kind": "mock"}],
        "models": [
            {"name": "mock", "provider": "mock",
             "price": {"input_per_mtok": 1000, "output_per_mtok": 1000}},
            {"name": "embed", "provider": "mock", "kind": "embedding",
             "price": {"input_per_mtok": 10}},
        ],
        "routes": [
            {"name": "cached", "targets": [{"model": "mock"}], "cache": {"ttl_s": 60}},
            {"name": "semantic", "targets": [{"model": "mock"}],
             "cache": {"mode": "semantic", "embedding_model": "embed", "threshold": 0.9}},
            {"name": "plain", "targets": [{"model": "mock"}]},
        ],
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "memory":
        return {}
    url = request.getfixturevalue("redis_url")
    return {"redis_url": url, "redis_prefix": request.getfixturevalue("redis_prefix")}


def post(k: Keel, body: dict[str, Any], key: str | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    h = {"authorization": f"Bearer {key or k.admin_key}", **(headers or {})}
    return httpx.post(k.base_url + "/chat/completions", json=body, headers=h, timeout=20)


def trace(k: Keel, r: httpx.Response) -> dict[str, Any]:
    k.flush()
    return dict(httpx.get(f"{k.url}/api/traces/{r.headers['x-keel-trace-id']}",
                          headers=k.admin_headers()).json())


@pytest.fixture
def keel(tmp_path: Path, backend: dict[str, str]) -> Iterator[Keel]:
    with running_keel(tmp_path, config(), **backend) as k:
        yield k


def wait_for(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_exact_cache_serves_the_second_request_and_traces_the_saving(keel: Keel) -> None:
    first = post(keel, {"model": "cached", "messages": Q})
    wait_for(lambda: keel.run(keel.state.gateway.drain()) is None)
    second = post(keel, {"model": "cached", "messages": Q, "user": "someone-else"})
    assert second.json() == first.json()
    t1, t2 = trace(keel, first), trace(keel, second)
    assert (t1["cache_hit"], t2["cache_hit"]) == (False, True)
    assert t2["cost_usd"] == 0 and t2["cost_saved_usd"] == pytest.approx(t1["cost_usd"])
    assert t1["cost_usd"] > 0 and t2["attempts"] == 0


def test_cache_hit_is_replayed_to_a_streaming_client(keel: Keel) -> None:
    post(keel, {"model": "cached", "messages": Q})
    keel.run(keel.state.gateway.drain())
    c = openai.OpenAI(base_url=keel.base_url, api_key=keel.admin_key, max_retries=0)
    text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="cached", messages=Q, stream=True) if ch.choices)  # type: ignore[arg-type]
    plain = post(keel, {"model": "cached", "messages": Q}).json()
    assert text == plain["choices"][0]["message"]["content"]


def test_cache_headers_bypass_and_opt_in(keel: Keel) -> None:
    post(keel, {"model": "cached", "messages": Q})
    keel.run(keel.state.gateway.drain())
    r = post(keel, {"model": "cached", "messages": Q}, headers={"x-keel-cache": "no-store"})
    assert trace(keel, r)["cache_hit"] is False
    # a route without cache config opts in per request
    post(keel, {"model": "plain", "messages": Q}, headers={"x-keel-cache-ttl": "30"})
    keel.run(keel.state.gateway.drain())
    r = post(keel, {"model": "plain", "messages": Q}, headers={"x-keel-cache-ttl": "30"})
    assert trace(keel, r)["cache_hit"] is True
    bad = post(keel, {"model": "plain", "messages": Q}, headers={"x-keel-cache": "maybe"})
    assert bad.status_code == 400 and "no-store" in bad.json()["error"]["message"]


def test_cache_is_per_team_by_default(keel: Keel) -> None:
    a = keel.create_key(team="a")
    b = keel.create_key(team="b")
    post(keel, {"model": "cached", "messages": Q}, key=a)
    keel.run(keel.state.gateway.drain())
    assert trace(keel, post(keel, {"model": "cached", "messages": Q}, key=b))["cache_hit"] \
        is False
    assert trace(keel, post(keel, {"model": "cached", "messages": Q}, key=a))["cache_hit"] \
        is True


def test_semantic_cache_answers_a_reworded_question(keel: Keel) -> None:
    first = post(keel, {"model": "semantic", "messages": [
        {"role": "user", "content": "how do I reset my account password quickly"}]})
    keel.run(keel.state.gateway.drain())
    second = post(keel, {"model": "semantic", "messages": [
        {"role": "user", "content": "how do I quickly reset my account password"}]})
    t2 = trace(keel, second)
    assert t2["cache_hit"] is True and float(t2["tags"]["keel.cache_similarity"]) >= 0.9
    assert second.json()["choices"] == first.json()["choices"]
    other = post(keel, {"model": "semantic", "messages": [
        {"role": "user", "content": "what are your opening hours on sunday"}]})
    assert trace(keel, other)["cache_hit"] is False
    # the embedding calls are traced and costed like any request
    rows = httpx.get(keel.url + "/api/traces", params={"model": "embed", "limit": 10},
                     headers=keel.admin_headers()).json()["data"]
    assert len(rows) == 3 and all(r["endpoint"] == "embeddings" for r in rows)
    assert rows[0]["tags"]["keel.purpose"] == "semantic-cache" and rows[0]["cost_usd"] > 0


def test_multi_turn_is_not_cached_semantically(keel: Keel) -> None:
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "reset my password"}]
    post(keel, {"model": "semantic", "messages": conv})
    keel.run(keel.state.gateway.drain())
    assert trace(keel, post(keel, {"model": "semantic", "messages": conv}))["cache_hit"] \
        is False


def test_rate_limit_refuses_with_retry_after_and_is_traced(tmp_path: Path,
                                                           backend: dict[str, str]) -> None:
    cfg = config(limits=[{"scope": "feature", "name": "support", "rpm": 3}])
    with running_keel(tmp_path, cfg, **backend) as k:
        hdr = {"x-keel-feature": "support"}
        codes = [post(k, {"model": "mock", "messages": Q}, headers=hdr).status_code
                 for _ in range(3)]
        r = post(k, {"model": "mock", "messages": Q}, headers=hdr)
        other = post(k, {"model": "mock", "messages": Q}, headers={"x-keel-feature": "qa"})
    assert codes == [200, 200, 200] and other.status_code == 200
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    err = r.json()["error"]
    assert err["code"] == "rate_limit_exceeded" and "support" in err["message"]


def test_budget_blocks_once_spent_and_reports_status(tmp_path: Path,
                                                     backend: dict[str, str]) -> None:
    # each request's worst case: ~20 input + 10 max output tokens at $1000/Mtok ~ $0.03
    cfg = config(budgets=[{"scope": "team", "name": "admin", "usd": 0.1,
                           "period": "daily"}])
    with running_keel(tmp_path, cfg, **backend) as k:
        codes = []
        for _ in range(8):
            codes.append(post(k, {"model": "mock", "messages": Q, "max_tokens": 10}).status_code)
            k.run(k.state.limits.flush())  # type: ignore[union-attr]
        status = httpx.get(k.url + "/api/budgets", headers=k.admin_headers()).json()["data"]
        k.flush()
        spent_in_traces = sum(t["cost_usd"] for t in httpx.get(
            k.url + "/api/traces", params={"limit": 50}, headers=k.admin_headers()
        ).json()["data"])
    assert 200 in codes and codes[-1] == 429
    assert codes.index(429) == codes.count(200)  # once refused, always refused
    row = status[0]
    assert row["spent"] <= 0.1 and row["reserved"] == 0
    assert row["spent"] == pytest.approx(spent_in_traces)
    assert row["state"] in ("soft", "exceeded")


def test_embeddings_count_against_rate_limits_and_budgets(tmp_path: Path,
                                                          backend: dict[str, str]) -> None:
    cfg = config(limits=[{"scope": "model", "name": "embed", "rpm": 2}],
                 budgets=[{"scope": "feature", "name": "vectors", "usd": 1}])
    with running_keel(tmp_path, cfg, **backend) as k:
        h = {"authorization": f"Bearer {k.admin_key}", "x-keel-feature": "vectors"}
        codes = [httpx.post(k.base_url + "/embeddings", headers=h, timeout=10,
                            json={"model": "embed", "input": "some text"}).status_code
                 for _ in range(3)]
        k.run(k.state.limits.flush())  # type: ignore[union-attr]
        rows = httpx.get(k.url + "/api/budgets", headers=k.admin_headers()).json()["data"]
    assert codes == [200, 200, 429]
    spent = next(r for r in rows if r["name"] == "vectors")["spent"]
    from keel.text import estimate_text

    # two admitted calls, each the mock's token count for the text at $10/Mtok
    assert spent == pytest.approx(2 * estimate_text("some text") * 10 / 1e6)
    assert spent > 0


def test_streamed_answer_is_cached_as_a_complete_completion(keel: Keel) -> None:
    c = openai.OpenAI(base_url=keel.base_url, api_key=keel.admin_key, max_retries=0)
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="cached", messages=Q, stream=True) if ch.choices)  # type: ignore[arg-type]
    keel.run(keel.state.gateway.drain())
    hit = c.chat.completions.with_raw_response.create(model="cached", messages=Q)  # type: ignore[arg-type]
    completion = hit.parse()
    assert completion.choices[0].message.content == streamed
    assert completion.id and completion.created > 0 and completion.object == "chat.completion"
    assert trace(keel, hit.http_response)["cache_hit"] is True  # type: ignore[arg-type]
