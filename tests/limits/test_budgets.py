"""Budgets: atomic worst-case reservations, settle/release, TTL, periods, reconciliation,
soft thresholds and Redis failures, on both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

import pytest

from keel.errors import BudgetExceeded, LimitsUnavailable
from keel.limits import LimitRequest, Limits, connect_redis, period_bounds, period_key
from keel.store import Store
from keel.store.traces import insert_rows, spend_by, trace_values
from keel.types import Trace
from tests.limits.conftest import Clock, MakeLimits, cfg
from tests.support.servers import free_port


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


NOW = ts("2025-01-15T12:00:00")  # a Wednesday
TEAM_BUDGET = {"budgets": [{"scope": "team", "name": "search", "usd": 1.0}]}


def req(usd: float, team: str = "search", key: str | None = "k1",
        feature: str = "f") -> LimitRequest:
    return LimitRequest(uuid.uuid4().hex, key, team, feature, "m", usd)


async def row(limits: Limits, name: str = "search",
              period: str | None = None) -> dict[str, object]:
    rows = [r for r in await limits.status()
            if r["name"] == name and period in (None, r["period"])]
    assert len(rows) == 1
    return rows[0]


# --- periods (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(("period", "now", "key", "start", "end"), [
    ("daily", "2025-01-15T23:59:59", "d2025-01-15", "2025-01-15T00:00:00", "2025-01-16T00:00:00"),
    ("daily", "2025-01-16T00:00:00", "d2025-01-16", "2025-01-16T00:00:00", "2025-01-17T00:00:00"),
    ("weekly", "2025-01-15T12:00:00", "w2025-W03", "2025-01-13T00:00:00", "2025-01-20T00:00:00"),
    ("weekly", "2025-01-19T23:59:59", "w2025-W03", "2025-01-13T00:00:00", "2025-01-20T00:00:00"),
    # ISO week 1 of 2025 starts on Monday 2024-12-30
    ("weekly", "2024-12-31T08:00:00", "w2025-W01", "2024-12-30T00:00:00", "2025-01-06T00:00:00"),
    ("monthly", "2025-01-31T23:59:59", "m2025-01", "2025-01-01T00:00:00", "2025-02-01T00:00:00"),
    ("monthly", "2024-12-10T00:00:00", "m2024-12", "2024-12-01T00:00:00", "2025-01-01T00:00:00"),
    ("monthly", "2024-02-29T10:00:00", "m2024-02", "2024-02-01T00:00:00", "2024-03-01T00:00:00"),
])
def test_period_keys_and_bounds_in_utc(period: str, now: str, key: str, start: str,
                                       end: str) -> None:
    assert period_key(period, ts(now)) == key  # type: ignore[arg-type]
    assert period_bounds(period, ts(now)) == (ts(start), ts(end))  # type: ignore[arg-type]


def test_total_period_never_resets() -> None:
    assert period_key("total", NOW) == "total"
    assert period_bounds("total", NOW) == (0.0, None)


# --- reservations ---------------------------------------------------------------------------


async def test_2000_concurrent_admits_reserve_exactly_what_fits(
        make_limits: MakeLimits, backend: str) -> None:
    clock = Clock(NOW)
    a = await make_limits(TEAM_BUDGET, clock=clock)
    b = await make_limits(TEAM_BUDGET, clock=clock) if backend == "redis" else a

    async def one(i: int) -> object:
        try:
            return await (a if i % 2 else b).admit(req(0.07))
        except BudgetExceeded:
            return None

    results = await asyncio.gather(*(one(i) for i in range(2000)))
    admitted = [r for r in results if r is not None]
    assert len(admitted) == 14  # 14 x $0.07 = $0.98 <= $1.00 < 15 x $0.07
    r = await row(a)
    assert r["spent"] == 0.0 and r["reserved"] == pytest.approx(0.98)
    assert r["remaining"] == pytest.approx(0.02)
    await asyncio.gather(*(a.settle(adm, 0.05, 100) for adm in admitted))  # type: ignore[arg-type]
    r = await row(b)
    assert r["spent"] == pytest.approx(0.70) and r["reserved"] == 0.0
    assert r["remaining"] == pytest.approx(0.30)
    assert r["spent"] <= 1.0


async def test_settle_spends_actual_and_release_returns_the_reservation(
        make_limits: MakeLimits) -> None:
    limits = await make_limits({"budgets": [{"scope": "team", "name": "search", "usd": 10}]},
                               clock=Clock(NOW))
    first = await limits.admit(req(1.0))
    second = await limits.admit(req(2.0))
    r = await row(limits)
    assert (r["spent"], r["reserved"], r["remaining"]) == (0.0, 3.0, 7.0)
    await limits.settle(first, 0.4, 1200)
    r = await row(limits)
    assert (r["spent"], r["reserved"]) == (pytest.approx(0.4), 2.0)
    await limits.release(second)
    await limits.settle(first, 0.4, 1200)  # a second settle of the same admission: no-op
    await limits.release(first)
    r = await row(limits)
    assert (r["spent"], r["reserved"], r["remaining"]) == (
        pytest.approx(0.4), 0.0, pytest.approx(9.6))
    assert r["state"] == "ok" and r["backend"] in ("memory", "redis")


async def test_refusal_names_the_budget_and_when_it_resets(make_limits: MakeLimits) -> None:
    limits = await make_limits(TEAM_BUDGET, clock=Clock(NOW))
    await limits.settle(await limits.admit(req(1.0)), 0.9, 10)
    held = await limits.admit(req(0.05))
    with pytest.raises(BudgetExceeded) as e:
        await limits.admit(req(0.2))
    err = e.value
    assert (err.status, err.type, err.code) == (429, "insufficient_quota", "budget_exceeded")
    assert err.message == (
        "budget exceeded: the monthly budget of team 'search' is $1.00; spent $0.90, "
        "reserved $0.05, and this request needs up to $0.20; it resets at 2025-02-01 00:00 UTC")
    assert err.headers == {"retry-after": str(int(ts("2025-02-01T00:00:00") - NOW))}
    await limits.release(held)


async def test_a_total_budget_refuses_without_retry_after(make_limits: MakeLimits) -> None:
    limits = await make_limits({"budgets": [{"scope": "key", "name": "k1", "usd": 0.5,
                                             "period": "total"}]}, clock=Clock(NOW))
    await limits.settle(await limits.admit(req(0.5)), 0.5, 10)
    with pytest.raises(BudgetExceeded) as e:
        await limits.admit(req(0.01))
    assert e.value.headers == {} and "resets never" in e.value.message
    assert (await row(limits, "k1"))["resets_at"] is None
    await limits.admit(req(0.01, key="k2"))  # another key is not in this budget


async def test_a_period_rollover_starts_from_zero(make_limits: MakeLimits) -> None:
    clock = Clock(ts("2025-01-15T23:59:00"))
    limits = await make_limits({"budgets": [{"scope": "feature", "name": "f", "usd": 1,
                                             "period": "daily"}]}, clock=clock)
    await limits.settle(await limits.admit(req(1.0)), 1.0, 10)
    with pytest.raises(BudgetExceeded) as e:
        await limits.admit(req(0.1))
    assert e.value.headers == {"retry-after": "60"}
    clock.advance(60)
    await limits.admit(req(0.1))
    r = await row(limits, "f")
    assert (r["spent"], r["reserved"], r["resets_at"]) == (0.0, 0.1, ts("2025-01-17T00:00:00"))


async def test_a_reservation_stops_counting_after_its_ttl(make_limits: MakeLimits) -> None:
    clock = Clock(NOW)
    limits = await make_limits(TEAM_BUDGET, clock=clock, reservation_ttl_s=0.5)
    lost = await limits.admit(req(0.6))  # its replica "dies": never settled
    with pytest.raises(BudgetExceeded):
        await limits.admit(req(0.6))
    clock.advance(0.6)
    fresh = await limits.admit(req(0.6))
    assert (await row(limits))["reserved"] == 0.6
    await limits.settle(lost, 0.1, 10)  # a late settle still spends, reserves nothing back
    r = await row(limits)
    assert (r["spent"], r["reserved"]) == (0.1, 0.6)
    await limits.release(fresh)
    assert (await row(limits))["reserved"] == 0.0


async def test_budgets_and_limits_admit_all_or_nothing(make_limits: MakeLimits) -> None:
    from keel.errors import RateLimited

    limits = await make_limits({
        "limits": [{"scope": "key", "name": "k1", "rpm": 2}],
        "budgets": [{"scope": "team", "name": "search", "usd": 1.0}],
    }, clock=Clock(NOW))
    await limits.admit(req(0.1))
    with pytest.raises(BudgetExceeded):
        await limits.admit(req(0.95))  # refused by the budget: the rpm is not counted
    await limits.admit(req(0.1))
    with pytest.raises(RateLimited):
        await limits.admit(req(0.1))  # refused by the rpm: nothing is reserved
    assert (await row(limits))["reserved"] == pytest.approx(0.2)


async def test_wildcard_budget_counts_each_team_separately(make_limits: MakeLimits) -> None:
    limits = await make_limits({"budgets": [{"scope": "team", "name": "*", "usd": 1.0}]},
                               clock=Clock(NOW))
    await limits.settle(await limits.admit(req(1.0, team="a")), 0.8, 1)
    await limits.settle(await limits.admit(req(1.0, team="b")), 0.3, 1)
    with pytest.raises(BudgetExceeded) as e:
        await limits.admit(req(0.3, team="a"))
    assert "team 'a'" in e.value.message
    await limits.admit(req(0.3, team="b"))
    rows = await limits.status()
    assert [(r["name"], r["match"], r["spent"], r["reserved"]) for r in rows] == [
        ("a", "*", 0.8, 0.0), ("b", "*", 0.3, 0.3)]


async def test_soft_threshold_warns_once_per_period(
        make_limits: MakeLimits, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(ts("2025-01-15T10:00:00"))
    limits = await make_limits({"budgets": [{"scope": "team", "name": "search", "usd": 1.0,
                                             "period": "daily", "soft_pct": 50}]}, clock=clock)

    def soft_warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "soft threshold" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="keel.limits"):
        await limits.settle(await limits.admit(req(0.3)), 0.3, 1)
        assert (await row(limits))["state"] == "ok" and soft_warnings() == []
        await limits.settle(await limits.admit(req(0.3)), 0.3, 1)
        assert (await row(limits))["state"] == "soft"
        assert soft_warnings() == [
            "budget soft threshold: daily team 'search' has spent $0.60 of $1.00 (60%, "
            "soft_pct 50.0); it resets at 2025-01-16 00:00 UTC"]
        await limits.settle(await limits.admit(req(0.3)), 0.3, 1)
        assert len(soft_warnings()) == 1
        await limits.settle(await limits.admit(req(0.1)), 0.1, 1)
        assert (await row(limits))["state"] == "exceeded"
        clock.advance(86_400)  # the next day: a new period, a new warning when crossed
        assert (await row(limits))["state"] == "ok"
        await limits.settle(await limits.admit(req(0.6)), 0.6, 1)
        assert len(soft_warnings()) == 2


# --- reconciliation -------------------------------------------------------------------------


async def _store_traces(store: Store, rows: list[tuple[float, str, str | None, float]]) -> None:
    traces = [Trace(id=uuid.uuid4().hex, start_time=t, endpoint="chat", team=team,
                    key_id=key, feature="f", cost_usd=cost) for t, team, key, cost in rows]
    await insert_rows(store, [trace_values(t) for t in traces], [])


async def test_spend_is_reconciled_from_stored_traces_after_a_restart(
        store: Store, backend: str, request: pytest.FixtureRequest) -> None:
    await _store_traces(store, [
        (ts("2025-01-01T00:00:00"), "search", "k1", 0.25),  # first second of the month
        (ts("2025-01-14T09:00:00"), "search", "k2", 0.50),
        (ts("2024-12-31T23:59:59"), "search", "k1", 9.00),  # last month
        (ts("2025-01-14T09:00:00"), "other", "k1", 0.125),
    ])
    assert await spend_by(store, "team", since=ts("2025-01-01T00:00:00")) == {
        "search": 0.75, "other": 0.125}
    config = cfg({"budgets": [
        {"scope": "team", "name": "search", "usd": 1.0},
        {"scope": "key", "name": "*", "usd": 100.0, "period": "total"},
        {"scope": "team", "name": "*", "usd": 5.0, "period": "daily"},
    ]})
    redis = prefix = None
    if backend == "redis":
        redis = connect_redis(request.getfixturevalue("redis_url"))
        prefix = request.getfixturevalue("redis_prefix")
    limits = Limits(config, store, redis, prefix=prefix or "keel:", clock=Clock(NOW))
    await limits.start()
    got = {(r["scope"], r["name"], r["period"]): r["spent"] for r in await limits.status()}
    assert got == {("team", "search", "monthly"): 0.75, ("key", "k1", "total"): 9.375,
                   ("key", "k2", "total"): 0.5}  # nothing stored today
    with pytest.raises(BudgetExceeded):
        await limits.admit(req(0.3))
    if redis is not None:
        # Another replica starting later must not re-count what Redis already holds.
        await limits.settle(await limits.admit(req(0.2)), 0.2, 1)
        await _store_traces(store, [(ts("2025-01-14T10:00:00"), "search", "k3", 0.05)])
        again = Limits(config, store, redis, prefix=prefix or "keel:", clock=Clock(NOW))
        await again.start()
        assert (await row(again, period="monthly"))["spent"] == pytest.approx(0.95)
        await redis.aclose()


# --- Redis failures -------------------------------------------------------------------------


def _down() -> object:
    return connect_redis(f"redis://127.0.0.1:{free_port()}/0")


async def test_budgets_fail_closed_when_redis_is_down(sqlite_store: Store) -> None:
    redis = _down()
    limits = Limits(cfg(TEAM_BUDGET), sqlite_store, redis, retry_interval_s=0.0)
    await limits.start()  # does not raise; reconciliation waits for Redis
    with pytest.raises(LimitsUnavailable) as e:
        await limits.admit(req(0.1))
    err = e.value
    assert (err.status, err.code) == (503, "limits_unavailable")
    assert "Redis is unreachable" in err.message and "team 'search'" in err.message
    assert "on_store_error: closed" in err.message
    await limits.admit(req(0.1, team="other"))  # no budget applies: admitted
    with pytest.raises(LimitsUnavailable):
        await limits.status()
    await redis.aclose()  # type: ignore[attr-defined]


async def test_budgets_configured_open_admit_when_redis_is_down(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    redis = _down()
    config = cfg({"budgets": [{"scope": "team", "name": "search", "usd": 0.01,
                               "on_store_error": "open"}],
                  "limits": [{"scope": "team", "name": "*", "rpm": 1}]})
    limits = Limits(config, sqlite_store, redis, retry_interval_s=60.0)
    with caplog.at_level(logging.WARNING, logger="keel.limits"):
        await limits.start()
        for _ in range(100):  # far over both the budget and the rpm
            adm = await limits.admit(req(1.0))
            await limits.settle(adm, 1.0, 100)
            await limits.release(await limits.admit(req(1.0)))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    await redis.aclose()  # type: ignore[attr-defined]


async def test_reconciliation_waits_for_redis_to_come_back(
        store: Store, redis_url: str, redis_prefix: str) -> None:
    await _store_traces(store, [(NOW - 3600, "search", "k1", 0.5)])
    limits = Limits(cfg(TEAM_BUDGET), store, _down(), prefix=redis_prefix,
                    retry_interval_s=0.0, clock=Clock(NOW))
    await limits.start()
    assert limits.redis is not None
    await limits.redis.redis.aclose()
    good = connect_redis(redis_url)
    limits.redis.redis = limits.redis.pipe.redis = good  # Redis answers again
    await limits.admit(req(0.4))
    with pytest.raises(BudgetExceeded):  # 0.5 stored + 0.4 reserved + 0.2 > 1.0
        await limits.admit(req(0.2))
    await good.aclose()
