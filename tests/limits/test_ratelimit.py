"""Rate limits: rpm/tpm over a sliding 60 s window of 1-second buckets, on both backends."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from keel.errors import RateLimited
from keel.limits import Admission, LimitRequest, Limits, connect_redis
from keel.store import Store
from tests.limits.conftest import Clock, MakeLimits, cfg
from tests.support.servers import free_port

T0 = 1_700_000_000.5  # half a second into a bucket


def req(key: str | None = "k1", team: str = "t", feature: str = "f", model: str = "m",
        usd: float = 0.0) -> LimitRequest:
    return LimitRequest(uuid.uuid4().hex, key, team, feature, model, usd)


async def admitted(limits: Limits, r: LimitRequest) -> bool:
    try:
        await limits.admit(r)
    except RateLimited:
        return False
    return True


async def test_rpm_admits_exactly_the_limit_then_refuses_with_retry_after(
        make_limits: MakeLimits) -> None:
    clock = Clock(T0)
    limits = await make_limits({"limits": [{"scope": "key", "name": "k1", "rpm": 5}]},
                               clock=clock)
    for _ in range(5):
        await limits.admit(req())
    with pytest.raises(RateLimited) as e:
        await limits.admit(req())
    err = e.value
    assert (err.status, err.type, err.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert err.headers == {"retry-after": "60"}  # the bucket of T0 leaves at T0 - 0.5 + 60
    assert "key 'k1'" in err.message and "5 requests per minute" in err.message
    assert "rpm" in err.message and "frees up in 60 s" in err.message
    clock.advance(29.7)
    with pytest.raises(RateLimited) as e:
        await limits.admit(req())
    assert e.value.headers["retry-after"] == "30"
    clock.advance(30.3)  # exactly 60 s after the first bucket began
    for _ in range(5):
        await limits.admit(req())
    assert not await admitted(limits, req())


async def test_rpm_window_slides_bucket_by_bucket(make_limits: MakeLimits) -> None:
    clock = Clock(T0)
    limits = await make_limits({"limits": [{"scope": "team", "name": "t", "rpm": 5}]},
                               clock=clock)
    for _ in range(3):
        await limits.admit(req())
    clock.advance(30)
    for _ in range(2):
        await limits.admit(req())
    clock.advance(20)  # T0 + 50: the window holds 3 + 2
    with pytest.raises(RateLimited) as e:
        await limits.admit(req())
    assert e.value.headers["retry-after"] == "10"  # until the first bucket (3) expires
    clock.advance(10)  # the 3 of the first bucket left; 2 remain
    assert [await admitted(limits, req()) for _ in range(4)] == [True, True, True, False]
    with pytest.raises(RateLimited) as e:
        await limits.admit(req())
    assert e.value.headers["retry-after"] == "30"  # the T0+30 bucket leaves 30 s from now


async def test_rpm_is_exact_under_2000_concurrent_admits_across_replicas(
        make_limits: MakeLimits, backend: str) -> None:
    clock = Clock(T0)
    config = {"limits": [{"scope": "key", "name": "*", "rpm": 150}]}
    a = await make_limits(config, clock=clock)
    b = await make_limits(config, clock=clock) if backend == "redis" else a
    results = await asyncio.gather(*(admitted(a if i % 2 else b, req()) for i in range(2000)))
    assert sum(results) == 150


async def test_tpm_counts_tokens_at_settle_not_at_admit(make_limits: MakeLimits) -> None:
    clock = Clock(T0)
    limits = await make_limits({"limits": [{"scope": "model", "name": "m", "tpm": 1000}]},
                               clock=clock)
    held = [await limits.admit(req()) for _ in range(20)]  # nothing counted yet
    await limits.settle(held[0], 0.0, 600)
    clock.advance(5)
    await limits.settle(held[1], 0.0, 399)
    adm = await limits.admit(req())  # 999 < 1000: still admitted
    await limits.settle(adm, 0.0, 1)
    with pytest.raises(RateLimited) as e:
        await limits.admit(req())
    assert "1,000 tokens per minute" in e.value.message and "tpm" in e.value.message
    assert "model 'm'" in e.value.message
    # 1000 in the window; once the 600 of T0's bucket leave (T0 - 0.5 + 60) it is under.
    assert e.value.headers["retry-after"] == "55"
    clock.advance(55)
    await limits.admit(req())
    await limits.release(held[2])  # a release counts no tokens
    await limits.admit(req())


async def test_wildcard_gives_each_value_its_own_window(make_limits: MakeLimits) -> None:
    limits = await make_limits({"limits": [{"scope": "key", "name": "*", "rpm": 2}]},
                               clock=Clock(T0))
    assert [await admitted(limits, req("k1")) for _ in range(3)] == [True, True, False]
    assert [await admitted(limits, req("k2")) for _ in range(3)] == [True, True, False]
    with pytest.raises(RateLimited) as e:
        await limits.admit(req("k2"))
    assert "key 'k2'" in e.value.message and "each key separately" in e.value.message
    assert [await admitted(limits, req(None)) for _ in range(5)] == [True] * 5  # no key


async def test_a_named_limit_applies_only_to_that_value(make_limits: MakeLimits) -> None:
    limits = await make_limits({"limits": [{"scope": "feature", "name": "chat", "rpm": 1}]},
                               clock=Clock(T0))
    assert [await admitted(limits, req(feature="chat")) for _ in range(2)] == [True, False]
    assert [await admitted(limits, req(feature="search")) for _ in range(5)] == [True] * 5


async def test_admission_is_all_or_nothing_across_matching_limits(
        make_limits: MakeLimits) -> None:
    limits = await make_limits({"limits": [
        {"scope": "key", "name": "*", "rpm": 10},
        {"scope": "team", "name": "small", "rpm": 3},
        {"scope": "model", "name": "m", "rpm": 1000},
    ]}, clock=Clock(T0))
    assert [await admitted(limits, req("k1", "small")) for _ in range(6)] == [True] * 3 + [
        False] * 3
    with pytest.raises(RateLimited) as e:
        await limits.admit(req("k2", "small"))
    assert "team 'small'" in e.value.message
    # The refused requests were counted nowhere: k1 still has 7 of its 10 left.
    assert [await admitted(limits, req("k1", "big")) for _ in range(8)] == [True] * 7 + [False]


async def test_settle_after_an_rpm_only_admission_costs_nothing(
        make_limits: MakeLimits) -> None:
    limits = await make_limits({"limits": [{"scope": "key", "name": "k1", "rpm": 2}]},
                               clock=Clock(T0))
    adm = await limits.admit(req())
    assert isinstance(adm, Admission)
    await limits.settle(adm, 1.0, 10_000)
    await limits.release(adm)
    assert [await admitted(limits, req()) for _ in range(2)] == [True, False]


async def test_without_limits_or_budgets_limits_are_inactive(sqlite_store: Store) -> None:
    # A client at a closed port proves no Redis call is made on the fast path.
    redis = connect_redis(f"redis://127.0.0.1:{free_port()}/0")
    limits = Limits(cfg({}), sqlite_store, redis)
    await limits.start()
    assert limits.active is False
    adm = await limits.admit(req())
    await limits.settle(adm, 1.0, 100)
    await limits.release(adm)
    assert await limits.status() == []
    await limits.aclose()
    await redis.aclose()


async def test_rate_limits_fail_open_when_redis_is_down(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    redis = connect_redis(f"redis://127.0.0.1:{free_port()}/0")
    limits = Limits(cfg({"limits": [{"scope": "key", "name": "*", "rpm": 1, "tpm": 10}]}),
                    sqlite_store, redis, retry_interval_s=0.0)
    with caplog.at_level(logging.WARNING, logger="keel.limits"):
        await limits.start()  # does not raise
        for _ in range(50):
            adm = await limits.admit(req())
            await limits.settle(adm, 0.0, 100)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited logging, not one per request
    assert "Redis unreachable" in warnings[0].getMessage()
    assert "rate limits fail open" in warnings[0].getMessage()
    await redis.aclose()


async def test_rate_limits_recover_when_redis_answers_again(
        sqlite_store: Store, redis_url: str, redis_prefix: str) -> None:
    good = connect_redis(redis_url)
    limits = Limits(cfg({"limits": [{"scope": "key", "name": "*", "rpm": 2}]}), sqlite_store,
                    connect_redis(f"redis://127.0.0.1:{free_port()}/0"), prefix=redis_prefix,
                    retry_interval_s=0.0, clock=Clock(T0))
    await limits.start()
    assert all([await admitted(limits, req()) for _ in range(5)])  # open while down
    assert limits.redis is not None
    await limits.redis.redis.aclose()
    limits.redis.redis = limits.redis.pipe.redis = good  # Redis is back
    assert [await admitted(limits, req()) for _ in range(3)] == [True, True, False]
    await good.aclose()


async def test_redis_keys_live_under_the_prefix_and_expire(
        sqlite_store: Store, redis_url: str, redis_prefix: str) -> None:
    redis = connect_redis(redis_url)
    limits = Limits(cfg({"limits": [{"scope": "key", "name": "*", "rpm": 5, "tpm": 100}],
                         "budgets": [{"scope": "team", "name": "t", "usd": 1.0,
                                      "period": "daily"}]}),
                    sqlite_store, redis, prefix=redis_prefix)
    await limits.start()
    await limits.settle(await limits.admit(req(usd=0.1)), 0.05, 10)
    await limits.admit(req(usd=0.1))
    keys = sorted(k.decode() for k in await redis.keys(redis_prefix + "*"))
    day = limits._periods.current("daily", time.time())[0]
    assert keys == [redis_prefix + k for k in (
        f"budget-res:team:t:{day}:t", f"budget-seeded:team:t:{day}", f"budget:team:t:{day}:t",
        "rl:rpm:key:*:k1", "rl:tpm:key:*:k1")]
    ttls = {k: await redis.ttl(k) for k in keys}
    assert all(0 < t <= 62 for k, t in ttls.items() if ":rl:" in k)
    assert all(86_400 < t <= 2 * 86_400 for k, t in ttls.items() if ":budget" in k)
    await redis.aclose()


async def test_scripts_fall_back_to_eval_when_redis_lost_them(
        sqlite_store: Store, redis_url: str, redis_prefix: str) -> None:
    redis = connect_redis(redis_url)
    limits = Limits(cfg({"limits": [{"scope": "key", "name": "*", "rpm": 30}]}),
                    sqlite_store, redis, prefix=redis_prefix, clock=Clock(T0))
    await limits.start()
    assert limits.redis is not None
    limits.redis.admit_script.sha = "0" * 40  # as after SCRIPT FLUSH or a Redis restart
    assert await admitted(limits, req())  # one call alone
    results = await asyncio.gather(*(admitted(limits, req()) for _ in range(100)))  # pipelined
    assert sum(results) == 29
    await redis.aclose()
