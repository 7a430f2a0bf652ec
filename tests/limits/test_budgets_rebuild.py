"""Budget counters are a cache of the store's spend: when Redis loses them (flushed,
evicted, restarted empty) they are rebuilt from the store before anything is admitted, and
spend Redis missed while it was unreachable is added back when it answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from keel.errors import BudgetExceeded, LimitsUnavailable
from keel.limits import Admission, LimitRequest, Limits, connect_redis
from keel.store import Store
from keel.store.retention import Rule, purge
from keel.store.spend import period_spend
from keel.store.traces import insert_rows, spend_by, trace_values
from keel.types import Trace
from tests.limits.conftest import Clock, cfg
from tests.support.servers import free_port


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


NOW = ts("2025-01-15T12:00:00")
TOTAL = {"budgets": [{"scope": "team", "name": "search", "usd": 3.0, "period": "total"}]}

Replica = Callable[..., Awaitable[Limits]]


def req(usd: float, team: str = "search", key: str = "k1") -> LimitRequest:
    return LimitRequest(uuid.uuid4().hex, key, team, "f", "m", usd)


async def spend(store: Store, rows: list[tuple[str, float]], *, at: float = NOW - 3600,
                key: str = "k1", feature: str = "f") -> None:
    """Stored traces: ``(team, cost)`` each."""
    await insert_rows(store, [trace_values(Trace(
        id=uuid.uuid4().hex, start_time=at, endpoint="chat", team=team, key_id=key,
        feature=feature, cost_usd=cost)) for team, cost in rows], [])


@pytest.fixture
async def replica(store: Store, redis_url: str, redis_prefix: str
                  ) -> AsyncIterator[Replica]:
    """``await replica(config, **kwargs)``: a started ``Limits`` on the test's store and
    Redis prefix; each call is another replica."""
    clients: list[Any] = []

    async def make(config: dict[str, Any], *, url: str = redis_url, start: bool = True,
                   **kwargs: Any) -> Limits:
        client = connect_redis(url)
        clients.append(client)
        kwargs.setdefault("clock", Clock(NOW))
        limits = Limits(cfg(config), kwargs.pop("store", store), client, prefix=redis_prefix,
                        **kwargs)
        if start:
            await limits.start()
        return limits

    yield make
    for c in clients:
        await c.aclose()


async def lose_everything(redis_url: str, prefix: str) -> None:
    """What a Redis restart without persistence does to keel's keys."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def delete(redis_url: str, *keys: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.delete(*keys) == len(keys)
    finally:
        await client.aclose()


async def admit_many(replicas: list[Limits], n: int, usd: float) -> list[Admission]:
    async def one(i: int) -> Admission | None:
        try:
            return await replicas[i % len(replicas)].admit(req(usd))
        except BudgetExceeded:
            return None

    return [a for a in await asyncio.gather(*(one(i) for i in range(n))) if a is not None]


async def row(limits: Limits, name: str = "search") -> dict[str, Any]:
    (r,) = [r for r in await limits.status() if r["name"] == name]
    return r


def swap_redis(limits: Limits, client: Any) -> Any:
    """Point a replica at another Redis client (a dead port: Redis unreachable)."""
    assert limits.redis is not None
    old = limits.redis.redis
    limits.redis.redis = limits.redis.pipe.redis = client
    return old


# --- the store query -----------------------------------------------------------------------


async def test_period_spend_agrees_with_the_traces_and_outlives_their_rows(
        store: Store) -> None:
    await spend(store, [("search", 0.25), ("other", 0.5)], at=ts("2025-01-01T00:00:00"))
    await spend(store, [("search", 0.125)], at=ts("2024-12-31T23:59:59"), key="k2",
                feature="g")
    month = ts("2025-01-01T00:00:00")
    for column in ("team", "feature", "key_id"):
        for since in (None, month):
            assert await period_spend(store, column, since=since) == await spend_by(
                store, column, since=since)
    assert await period_spend(store, "team", since=month, value="search") == {"search": 0.25}
    # Retention deletes trace rows; what a team or feature spent stays in the rollups.
    await purge(store, [Rule("f", None, 1.0), Rule("g", None, 1.0)], now=NOW)
    assert await spend_by(store, "team") == {}
    assert await period_spend(store, "team") == {"search": 0.375, "other": 0.5}
    assert await period_spend(store, "feature", since=month) == {"f": 0.75}
    limits = Limits(cfg({"budgets": [{"scope": "team", "name": "search", "usd": 1.0,
                                      "period": "total"}]}), store, None, clock=Clock(NOW))
    await limits.start()  # in memory: starts from the stored spend
    assert [r["spent"] for r in await limits.status()] == [0.375]


# --- rebuilding lost counters ---------------------------------------------------------------


async def test_counters_redis_lost_are_rebuilt_once_from_the_store_across_replicas(
        store: Store, replica: Replica, redis_url: str, redis_prefix: str) -> None:
    await spend(store, [("search", 0.1)] * 8)  # $0.80 of $3.00 spent
    a, b = await replica(TOTAL), await replica(TOTAL)
    assert (await row(a))["spent"] == pytest.approx(0.8)
    await lose_everything(redis_url, redis_prefix)
    admitted = await admit_many([a, b], 400, 0.1)  # both replicas rebuild at once
    assert len(admitted) == 22  # 0.80 + 22 x 0.10 = 3.00
    r = await row(b)
    assert (r["spent"], r["reserved"]) == (pytest.approx(0.8), pytest.approx(2.2))


async def test_status_shows_the_stored_spend_of_every_instance_after_a_loss(
        store: Store, replica: Replica, redis_url: str, redis_prefix: str) -> None:
    await spend(store, [("a", 0.3), ("b", 0.7), ("search", 0.5)])
    config = {"budgets": [{"scope": "team", "name": "*", "usd": 1.0},
                          {"scope": "team", "name": "search", "usd": 2.0, "period": "daily"}]}
    limits = await replica(config)
    await lose_everything(redis_url, redis_prefix)
    got = [(r["name"], r["period"], r["spent"]) for r in await limits.status()]
    assert got == [("a", "monthly", 0.3), ("b", "monthly", 0.7), ("search", "monthly", 0.5),
                   ("search", "daily", 0.5)]
    with pytest.raises(BudgetExceeded):
        await limits.admit(req(0.4, team="b"))


async def test_a_wildcard_rule_is_rebuilt_with_one_query_per_replica(
        store: Store, replica: Replica, redis_url: str, redis_prefix: str) -> None:
    teams = [f"t{i}" for i in range(10)]
    await spend(store, [(t, 0.5) for t in teams])
    config = {"budgets": [{"scope": "team", "name": "*", "usd": 1.0}]}
    a, b = await replica(config), await replica(config)
    await lose_everything(redis_url, redis_prefix)
    assert a.rebuild is not None and b.rebuild is not None
    before = a.rebuild.queries + b.rebuild.queries

    async def one(i: int) -> str | None:
        team = [*teams, "new"][i % 11]
        try:
            await (a, b)[i % 2].admit(req(0.1, team=team))
        except BudgetExceeded:
            return None
        return team

    got = [t for t in await asyncio.gather(*(one(i) for i in range(660))) if t is not None]
    assert {t: got.count(t) for t in set(got)} == {**{t: 5 for t in teams}, "new": 10}
    assert a.rebuild.queries + b.rebuild.queries - before <= 2  # one per replica at most


async def test_a_counter_evicted_alone_is_rebuilt_from_its_own_stored_spend(
        store: Store, replica: Replica, redis_url: str, redis_prefix: str) -> None:
    await spend(store, [("a", 0.6), ("b", 0.2)])
    limits = await replica({"budgets": [{"scope": "team", "name": "*", "usd": 1.0}]})
    pk = limits._periods.current("monthly", NOW)[0]
    await delete(redis_url, f"{redis_prefix}budget:team:*:{pk}:a")  # the marker stays
    with pytest.raises(BudgetExceeded) as e:
        await limits.admit(req(0.5, team="a"))
    assert "spent $0.60" in e.value.message
    await limits.admit(req(0.5, team="b"))


async def test_a_lost_budget_hash_keeps_the_live_reservations(
        store: Store, replica: Replica, redis_url: str, redis_prefix: str) -> None:
    limits = await replica(TOTAL)
    held = await admit_many([limits], 2, 1.0)
    assert len(held) == 2
    pk = "total"
    base = f"{redis_prefix}budget:team:search:{pk}:search"
    await delete(redis_url, base)  # evicted; its reservation set is still there
    with pytest.raises(BudgetExceeded) as e:
        await limits.admit(req(1.5))
    assert "reserved $2.00" in e.value.message
    await limits.admit(req(1.0))


async def test_a_lost_reservation_set_holds_nothing(
        store: Store, replica: Replica, redis_url: str, redis_prefix: str) -> None:
    limits = await replica(TOTAL)
    assert len(await admit_many([limits], 3, 1.0)) == 3
    await delete(redis_url, f"{redis_prefix}budget-res:team:search:total:search")
    await limits.admit(req(3.0))  # nothing is held any more, and nothing stays stuck
    assert (await row(limits))["reserved"] == 3.0


async def test_a_counter_written_before_seed_marks_is_not_counted_twice(
        store: Store, replica: Replica, redis_url: str, redis_prefix: str) -> None:
    await spend(store, [("search", 1.0)])
    client = aioredis.Redis.from_url(redis_url)
    await client.hset(f"{redis_prefix}budget:team:search:total:search", "spent",
                      "1000000000")  # $1.00, as an older keel left it
    await client.aclose()
    limits = await replica(TOTAL)
    assert (await row(limits))["spent"] == 1.0
    assert len(await admit_many([limits], 50, 0.5)) == 4


# --- spend missed while Redis was unreachable -----------------------------------------------


async def test_spend_missed_while_redis_was_unreachable_is_added_when_it_answers(
        store: Store, replica: Replica) -> None:
    config = {"budgets": [{"scope": "team", "name": "search", "usd": 3.0, "period": "total",
                           "on_store_error": "open"}]}
    limits = await replica(config, retry_interval_s=0.0)
    counted = await limits.admit(req(0.5))  # reserved in Redis
    dead = connect_redis(f"redis://127.0.0.1:{free_port()}/0")
    good = swap_redis(limits, dead)
    await limits.settle(counted, 0.4, 10)  # Redis does not take it
    for _ in range(5):  # admitted without counting
        adm = await limits.admit(req(0.2))
        assert adm.degraded
        limits.settle_soon(adm, 0.2, 10)
    await limits.flush()
    swap_redis(limits, good)  # Redis kept its counters through the outage
    await dead.aclose()
    await limits.admit(req(0.1))
    await limits.flush()
    r = await row(limits)
    assert (r["spent"], r["reserved"]) == (pytest.approx(1.4), pytest.approx(0.1))
    assert not limits.unsettled


async def test_missed_spend_is_not_added_to_a_counter_rebuilt_from_the_store(
        store: Store, replica: Replica, redis_url: str, redis_prefix: str) -> None:
    config = {"budgets": [{"scope": "team", "name": "search", "usd": 3.0, "period": "total",
                           "on_store_error": "open"}]}
    limits = await replica(config, retry_interval_s=0.0)
    dead = connect_redis(f"redis://127.0.0.1:{free_port()}/0")
    good = swap_redis(limits, dead)
    for _ in range(5):
        limits.settle_soon(await limits.admit(req(0.2)), 0.2, 10)
    await limits.flush()
    await spend(store, [("search", 0.2)] * 5)  # their traces
    await lose_everything(redis_url, redis_prefix)  # Redis restarted empty meanwhile
    swap_redis(limits, good)
    await dead.aclose()
    await limits.admit(req(0.1))
    await limits.flush()
    r = await row(limits)
    assert (r["spent"], r["reserved"]) == (pytest.approx(1.0), pytest.approx(0.1))


# --- the store does not answer while a counter must be rebuilt ------------------------------


@pytest.mark.parametrize("on_store_error", ["closed", "open"])
async def test_a_lost_counter_and_no_store_follows_on_store_error(
        replica: Replica, redis_url: str, redis_prefix: str, on_store_error: str) -> None:
    dead_store = Store(f"postgresql://postgres@127.0.0.1:{free_port()}/keel")
    config = {"budgets": [{"scope": "team", "name": "search", "usd": 3.0, "period": "total",
                           "on_store_error": on_store_error}]}
    limits = await replica(config, store=dead_store, start=False)
    await limits.start()  # does not raise: counters are built when first needed
    try:
        if on_store_error == "closed":
            with pytest.raises(LimitsUnavailable) as e:
                await limits.admit(req(0.1))
            assert e.value.status == 503
            assert "the store, which holds the spend to rebuild them from, did not answer" \
                in e.value.message
            assert "team 'search'" in e.value.message
        else:
            assert (await limits.admit(req(0.1))).degraded
        with pytest.raises(LimitsUnavailable) as e:
            await limits.status()
        assert "store" in e.value.message
    finally:
        await dead_store.aclose()
