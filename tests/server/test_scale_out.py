"""Two real keel replicas on one PostgreSQL and one Redis share budgets, rate limits,
circuit state and the response cache."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.support.fault_upstream import FaultUpstream
from tests.support.process import KeelProcess
from tests.support.servers import serve

ADMIN = "sk-test-scale-admin"
HI = [{"role": "user", "content": "hi"}]


def config(upstream_url: str) -> str:
    return f"""
providers:
  - {{name: mock, kind: mock}}
  - {{name: flaky, kind: openai, base_url: "{upstream_url}/v1", timeout_s: 5}}
  - {{name: steady, kind: openai, base_url: "{upstream_url}/v1", timeout_s: 5}}
models:
  - {{name: mock, provider: mock, price: {{input_per_mtok: 1000}}}}
  - name: a
    provider: flaky
    breaker: {{failures: 2, cooldown_s: 60}}
  - {{name: b, provider: steady}}
routes:
  - {{name: cached, targets: [{{model: mock}}], cache: {{ttl_s: 300}}}}
  - {{name: chain, targets: [{{model: a}}], fallbacks: [b]}}
limits:
  - {{scope: feature, name: limited, rpm: 200}}
budgets:
  - {{scope: feature, name: metered, usd: 0.35, period: daily}}
"""


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
             ) -> Iterator[tuple[KeelProcess, KeelProcess, FaultUpstream]]:
    from tests.conftest import _reset_postgres

    asyncio.run(_reset_postgres(postgres_url))
    fault = FaultUpstream()
    with serve(fault.app) as up:
        env = {"KEEL_REDIS_URL": redis_url, "KEEL_REDIS_PREFIX": redis_prefix}
        text = config(up.url)
        a = KeelProcess(tmp_path, text, postgres_url, ADMIN, name="a", **env)
        try:
            b = KeelProcess(tmp_path, text, postgres_url, ADMIN, name="b", **env)
        except BaseException:
            a.stop()
            raise
        try:
            yield a, b, fault
        finally:
            assert a.stop() == 0 and b.stop() == 0


async def spray(replicas: list[KeelProcess], total: int, body: dict[str, Any],
                headers: dict[str, str], concurrency: int = 256) -> list[int]:
    """`total` requests, `concurrency` in flight at once, alternating between replicas."""
    statuses: list[int] = []
    todo = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def worker() -> None:
            for i in todo:
                r = replicas[i % len(replicas)]
                async with session.post(r.url + "/v1/chat/completions", json=body,
                                        headers={**r.headers, **headers}) as resp:
                    await resp.read()
                    statuses.append(resp.status)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def stored_trace(replica: KeelProcess, trace_id: str) -> dict[str, Any]:
    """The trace once a replica's writer has stored it (polled, at most 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        r = httpx.get(f"{replica.url}/api/traces/{trace_id}", headers=replica.headers)
        if r.status_code == 200:
            return dict(r.json())
        assert time.monotonic() < deadline, f"trace {trace_id} was never stored"
        time.sleep(0.1)


@pytest.mark.slow
def test_budget_for_k_requests_admits_at_most_k_of_10000(replicas: Any) -> None:
    a, b, _ = replicas
    # worst case == actual cost: 7 input tokens x $1000/Mtok = $0.007, no output price;
    # $0.35 fits exactly 50 requests
    statuses = asyncio.run(spray([a, b], 10_000, {"model": "mock", "messages": HI},
                                 {"x-keel-feature": "metered"}))
    admitted = statuses.count(200)
    assert admitted == 50  # at most K, and no reservation leaked
    assert set(statuses) <= {200, 429}
    time.sleep(1.0)  # settlements are written after the responses
    rows = httpx.get(a.url + "/api/budgets", headers=a.headers).json()["data"]
    metered = next(r for r in rows if r["name"] == "metered")
    assert metered["spent"] <= 0.35 + 1e-12
    assert metered["spent"] == pytest.approx(admitted * 0.007)
    assert metered["reserved"] == 0


@pytest.mark.slow
def test_rate_limit_holds_across_replicas_within_one_percent(replicas: Any) -> None:
    a, b, _ = replicas
    statuses = asyncio.run(spray([a, b], 600, {"model": "mock", "messages": HI},
                                 {"x-keel-feature": "limited"}))
    admitted = statuses.count(200)
    assert 198 <= admitted <= 202, admitted
    assert statuses.count(429) == 600 - admitted


def test_circuit_opened_on_one_replica_is_honoured_by_the_other(replicas: Any) -> None:
    a, b, fault = replicas
    fault.script("a", ["status:500"] * 2)
    for _ in range(2):  # replica A sees two failures of model a and opens its circuit
        r = httpx.post(a.url + "/v1/chat/completions", headers=a.headers,
                       json={"model": "chain", "messages": HI})
        assert r.status_code == 200  # served by the fallback
    assert fault.count("a") == 2
    time.sleep(1.2)  # replicas adopt shared circuit state every 0.5 s
    r = httpx.post(b.url + "/v1/chat/completions", headers=b.headers,
                   json={"model": "chain", "messages": HI})
    assert r.status_code == 200
    assert fault.count("a") == 2, "replica B must not call the open deployment"
    t = stored_trace(b, r.headers["x-keel-trace-id"])
    assert t["attempt_log"][0]["error_type"] == "circuit_open"


def test_cache_entry_written_by_one_replica_is_served_by_the_other(replicas: Any) -> None:
    a, b, _ = replicas
    body = {"model": "cached", "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
    first = httpx.post(a.url + "/v1/chat/completions", headers=a.headers, json=body)
    time.sleep(0.3)  # the cache write happens just after the response
    second = httpx.post(b.url + "/v1/chat/completions", headers=b.headers, json=body)
    assert second.json() == first.json()
    # read through the other replica: the store is shared
    assert stored_trace(a, second.headers["x-keel-trace-id"])["cache_hit"] is True
