"""Budgets survive losing Redis: two gateway replicas on one database, a real redis-server
killed and started again empty; the budget holds from the spend the store recorded."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.store import Store
from keel.store.traces import spend_by
from tests.limits.redis_server import RedisServer
from tests.support.keel import Keel, running_keel

BUDGET_USD = 3.00
PRICE_USD = 0.10  # per request, whatever the tokens: the worst case is the actual cost


def config(on_store_error: str) -> dict[str, Any]:
    return {
        "providers": [{"name": "mock", "kind": "mock"}],
        "models": [{"name": "mock", "provider": "mock",
                    "price": {"per_request_usd": PRICE_USD}}],
        "budgets": [{"scope": "team", "name": "search", "usd": BUDGET_USD, "period": "total",
                     "on_store_error": on_store_error}],
    }


@contextlib.contextmanager
def two_replicas(tmp_path: Path, database_url: str, redis: RedisServer,
                 on_store_error: str) -> Iterator[tuple[Keel, Keel]]:
    prefix = f"keel-loss-{uuid.uuid4().hex[:8]}:"
    cfg = config(on_store_error)
    with running_keel(tmp_path / "a", cfg, database_url=database_url, redis_url=redis.url,
                      redis_prefix=prefix) as a, \
            running_keel(tmp_path / "b", cfg, database_url=database_url, redis_url=redis.url,
                         redis_prefix=prefix) as b:
        for k in (a, b):
            assert k.state.limits is not None
            k.state.limits.retry_interval_s = 0.05  # try Redis again soon after a failure
        yield a, b


def chat(k: Keel, key: str) -> httpx.Response:
    """One request (a fresh prompt each time, so nothing is answered from a cache); waits
    until its trace is stored and its settlement sent."""
    r = httpx.post(k.base_url + "/chat/completions", timeout=30,
                   headers={"authorization": f"Bearer {key}"},
                   json={"model": "mock", "messages": [
                       {"role": "user", "content": f"question {uuid.uuid4().hex}"}]})
    k.flush()
    assert k.state.limits is not None
    k.run(k.state.limits.flush())
    return r


def spend_until_refused(replicas: tuple[Keel, Keel], key: str) -> int:
    """Requests alternating between the replicas until both refuse with budget_exceeded;
    a 503 (Redis not answering yet, fail-closed) is retried. Returns how many were
    answered."""
    answered = 0
    refused = {0: False, 1: False}
    deadline = time.monotonic() + 60
    i = 0
    while not all(refused.values()):
        assert time.monotonic() < deadline, "the replicas never refused"
        assert answered <= 100, "the budget never held"
        r = chat(replicas[i % 2], key)
        if r.status_code == 200:
            answered += 1
            refused = {0: False, 1: False}
        elif r.status_code == 429:
            assert r.json()["error"]["code"] == "budget_exceeded", r.text
            refused[i % 2] = True
        else:
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "limits_unavailable"
            time.sleep(0.05)
        i += 1
    return answered


def stored_spend(database_url: str) -> float:
    async def go() -> float:
        store = Store(database_url)
        try:
            return (await spend_by(store, "team", value="search")).get("search", 0.0)
        finally:
            await store.aclose()

    return asyncio.run(go())


def budget_row(k: Keel) -> dict[str, Any]:
    r = httpx.get(k.url + "/api/budgets", headers=k.admin_headers())
    assert r.status_code == 200, r.text
    (row,) = r.json()["data"]
    return dict(row)


@pytest.mark.parametrize("on_store_error", ["closed", "open"])
def test_a_budget_holds_from_the_stored_spend_after_redis_restarts_empty(
        tmp_path: Path, database_url: str, private_redis: RedisServer,
        on_store_error: str) -> None:
    with two_replicas(tmp_path, database_url, private_redis, on_store_error) as (a, b):
        key = a.create_key(team="search", feature="support")
        b.run(b.state.keys.refresh())
        for i in range(8):  # $0.80 spent before Redis goes
            assert chat((a, b)[i % 2], key).status_code == 200
        assert budget_row(a)["spent"] == pytest.approx(0.80)

        private_redis.kill()
        outage = [chat((a, b)[i % 2], key) for i in range(5)]
        if on_store_error == "closed":
            assert [r.status_code for r in outage] == [503] * 5
        else:  # admitted without counting: the store still records what they cost
            assert [r.status_code for r in outage] == [200] * 5
        spent_before = 0.80 + (0.50 if on_store_error == "open" else 0.0)
        assert stored_spend(database_url) == pytest.approx(spent_before)

        private_redis.start()  # empty: no counters, no scripts
        assert private_redis.keys() == 0
        answered = spend_until_refused((a, b), key)

        total = stored_spend(database_url)
        assert total <= BUDGET_USD + 1e-9
        assert total == pytest.approx(BUDGET_USD)  # and not refused early either
        assert answered == round((BUDGET_USD - spent_before) / PRICE_USD)
        for k in (a, b):
            row = budget_row(k)
            assert row["spent"] == pytest.approx(BUDGET_USD) and row["reserved"] == 0.0
            assert row["state"] == "exceeded"
