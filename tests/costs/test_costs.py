"""Costs: Price.cost, price lookup (config > built-in table), gateway costing from the
built-in table, repricing stored traces (and their rollups), and spend reports."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from keel.cli.main import main
from keel.config import (
    KeelConfig,
    ModelConfig,
    PriceSpec,
    ProviderConfig,
    parse_config,
)
from keel.costs.prices import BUILTIN, PRICES_AS_OF, lookup, model_price, resolve, snapshot_base
from keel.costs.reprice import reprice
from keel.costs.spend import spend
from keel.errors import ConfigError, InvalidRequest
from keel.store import Store
from keel.store.costs import list_events
from keel.store.schema import cost_events, rollups, traces
from keel.store.traces import TraceFilter, insert_rows, list_traces, trace_values
from keel.types import Price, PriceTier, Trace, Usage, new_trace_id
from tests.support.fake_openai import FakeOpenAI
from tests.support.keel import running_keel
from tests.support.servers import serve

M = 1_000_000


# --- Price.cost ------------------------------------------------------------------------------


def test_plain_input_and_output() -> None:
    p = Price(input_per_mtok=2.5, output_per_mtok=10.0)
    assert p.cost(Usage(input_tokens=1000, output_tokens=200)) == pytest.approx(
        (1000 * 2.5 + 200 * 10.0) / M)
    assert p.cost(Usage()) == 0.0


def test_cached_input_has_its_own_rate_or_the_input_rate() -> None:
    u = Usage(input_tokens=1000, output_tokens=200, cached_tokens=400)
    priced = Price(input_per_mtok=2.5, output_per_mtok=10.0, cached_input_per_mtok=1.25)
    assert priced.cost(u) == pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10.0) / M)
    unpriced = Price(input_per_mtok=2.5, output_per_mtok=10.0)
    assert unpriced.cost(u) == pytest.approx((1000 * 2.5 + 200 * 10.0) / M)


def test_cache_writes_and_reads() -> None:
    # input 10,000 = 2,000 fresh + 6,000 read from the cache + 2,000 written to it
    u = Usage(input_tokens=10_000, output_tokens=500, cached_tokens=6_000,
              cache_write_tokens=2_000)
    p = Price(input_per_mtok=3.0, output_per_mtok=15.0, cached_input_per_mtok=0.30,
              cache_write_per_mtok=3.75)
    assert p.cost(u) == pytest.approx((2000 * 3.0 + 6000 * 0.30 + 2000 * 3.75 + 500 * 15.0) / M)
    assert p.cost(u) == pytest.approx(0.0228)
    # unpriced writes cost the input rate
    assert Price(3.0, 15.0, 0.30).cost(u) == pytest.approx(
        (2000 * 3.0 + 6000 * 0.30 + 2000 * 3.0 + 500 * 15.0) / M)


def test_reasoning_is_part_of_the_output_and_never_counted_twice() -> None:
    u = Usage(input_tokens=0, output_tokens=1000, reasoning_tokens=600)
    assert Price(1.0, 4.0).cost(u) == pytest.approx(1000 * 4.0 / M)
    own_rate = Price(1.0, 4.0, reasoning_per_mtok=2.0)
    assert own_rate.cost(u) == pytest.approx((400 * 4.0 + 600 * 2.0) / M)
    # reported reasoning above the output (not the OpenAI convention) is capped
    odd = Usage(output_tokens=100, reasoning_tokens=300)
    assert own_rate.cost(odd) == pytest.approx(100 * 2.0 / M)
    # OpenAI's usage: completion_tokens already include reasoning_tokens
    openai_usage = Usage.from_openai({"prompt_tokens": 10, "completion_tokens": 50,
                                      "completion_tokens_details": {"reasoning_tokens": 30}})
    assert Price(1.0, 4.0).cost(openai_usage) == pytest.approx((10 * 1.0 + 50 * 4.0) / M)


def test_per_request_fee() -> None:
    p = Price(1.0, 2.0, per_request_usd=0.005)
    assert p.cost(Usage(input_tokens=1000, output_tokens=1000)) == pytest.approx(
        0.003 + 0.005)
    assert p.cost(Usage()) == pytest.approx(0.005)


def test_tiers_price_the_whole_request_above_the_threshold() -> None:
    p = Price(1.25, 10.0, tiers=(PriceTier(200_000, input_per_mtok=2.5, output_per_mtok=15.0),))
    at = Usage(input_tokens=200_000, output_tokens=1000)
    above = Usage(input_tokens=200_001, output_tokens=1000)
    assert p.cost(at) == pytest.approx((200_000 * 1.25 + 1000 * 10.0) / M)
    assert p.cost(above) == pytest.approx((200_001 * 2.5 + 1000 * 15.0) / M)


def test_several_tiers_in_any_order_and_unset_rates_are_inherited() -> None:
    p = Price(1.0, 2.0, cached_input_per_mtok=0.5, per_request_usd=0.001, tiers=(
        PriceTier(1000, input_per_mtok=4.0),
        PriceTier(100, input_per_mtok=3.0, output_per_mtok=5.0)))
    small = Usage(input_tokens=100, output_tokens=10, cached_tokens=50)
    mid = Usage(input_tokens=500, output_tokens=10, cached_tokens=50)
    big = Usage(input_tokens=5000, output_tokens=10, cached_tokens=50)
    assert p.cost(small) == pytest.approx((50 * 1.0 + 50 * 0.5 + 10 * 2.0) / M + 0.001)
    assert p.cost(mid) == pytest.approx((450 * 3.0 + 50 * 0.5 + 10 * 5.0) / M + 0.001)
    # the 1000 tier sets only the input rate: output and cached rates are the base's
    assert p.cost(big) == pytest.approx((4950 * 4.0 + 50 * 0.5 + 10 * 2.0) / M + 0.001)


def test_builtin_long_context_tier_with_cache_rates() -> None:
    p = BUILTIN["claude-sonnet-4"]
    u = Usage(input_tokens=250_000, output_tokens=2000, cached_tokens=100_000,
              cache_write_tokens=50_000)
    assert p.cost(u) == pytest.approx(
        (100_000 * 6.0 + 100_000 * 0.60 + 50_000 * 7.50 + 2000 * 22.50) / M)
    assert p.cost(u) == pytest.approx(1.08)


def test_price_spec_to_price_and_its_validation() -> None:
    spec = PriceSpec(input_per_mtok=1, output_per_mtok=2, reasoning_per_mtok=3,
                     per_request_usd=0.01,
                     tiers=[{"above_input_tokens": 10, "input_per_mtok": 5}])  # type: ignore[list-item]
    p = spec.to_price()
    assert (p.reasoning_per_mtok, p.per_request_usd) == (3, 0.01)
    assert p.tiers == (PriceTier(10, input_per_mtok=5),)
    assert p.cost(Usage(input_tokens=11)) == pytest.approx(11 * 5 / M + 0.01)
    base = {"providers": [{"name": "m", "kind": "mock"}]}
    with pytest.raises(ConfigError, match=r"models\[0\]\.price\.tiers"):
        parse_config({**base, "models": [{"name": "x", "provider": "m", "price": {
            "tiers": [{"above_input_tokens": 5}, {"above_input_tokens": 5}]}}]}, "k.yaml")
    with pytest.raises(ConfigError, match=r"models\[0\]\.price\.tiers\[0\]\.above_input_tokens"):
        parse_config({**base, "models": [{"name": "x", "provider": "m", "price": {
            "tiers": [{"input_per_mtok": 5}]}}]}, "k.yaml")
    with pytest.raises(ConfigError, match=r"models\[0\]\.price\.per_request_usd"):
        parse_config({**base, "models": [{"name": "x", "provider": "m",
                                          "price": {"per_request_usd": -1}}]}, "k.yaml")


# --- lookup ----------------------------------------------------------------------------------


def _config(*models: dict[str, Any]) -> KeelConfig:
    return parse_config({"providers": [{"name": "up", "kind": "openai",
                                        "base_url": "http://127.0.0.1:9/v1"}],
                         "models": list(models)}, "test.yaml")


def test_snapshot_names() -> None:
    assert snapshot_base("gpt-4o-2024-08-06") == "gpt-4o"
    assert snapshot_base("claude-3-5-sonnet-20241022") == "claude-3-5-sonnet"
    assert snapshot_base("gemini-1.5-pro-002") == "gemini-1.5-pro"
    assert snapshot_base("claude-3-7-sonnet-latest") == "claude-3-7-sonnet"
    assert snapshot_base("gpt-4o") is None and snapshot_base("gpt-4o-mini-2024") is None


def test_lookup_builtin_exact_then_snapshot() -> None:
    cfg = KeelConfig()
    assert lookup("gpt-4o", cfg) == Price(2.5, 10.0, 1.25)
    assert lookup("gpt-4o-2024-08-06", cfg) == Price(2.5, 10.0, 1.25)
    assert lookup("gpt-4o-2024-05-13", cfg) == Price(5.0, 15.0)  # its own exact entry
    assert lookup("claude-3-5-sonnet-20241022", cfg) == BUILTIN["claude-3-5-sonnet"]
    assert lookup("gemini-1.5-pro-002", cfg) == BUILTIN["gemini-1.5-pro"]
    assert lookup("text-embedding-3-small", cfg) == Price(0.02, 0.0)
    assert lookup("gpt-4o-mini-2024", cfg) is None
    assert lookup("my-own-model", cfg) is None
    assert resolve("o3-2025-04-16", cfg) == ("built-in:o3", BUILTIN["o3"])
    assert PRICES_AS_OF.count("-") == 2


def test_lookup_config_beats_builtin() -> None:
    cfg = _config(
        {"name": "fast", "provider": "up", "upstream": "gpt-4o-mini",
         "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        {"name": "fast-eu", "provider": "up", "upstream": "gpt-4o-mini",
         "price": {"input_per_mtok": 9.0, "output_per_mtok": 9.0}},
        {"name": "smart", "provider": "up", "upstream": "gpt-4.1"},  # no price
        {"name": "free", "provider": "up", "upstream": "gpt-4o", "price": {}},
        {"name": "gpt-4o", "provider": "up", "upstream": "my-azure-deployment"},
        {"name": "house", "provider": "up", "upstream": "house-model-v2"},
    )
    negotiated = Price(1.0, 2.0)
    assert lookup("fast", cfg) == negotiated
    assert lookup("gpt-4o-mini", cfg) == negotiated  # by upstream name; first declared wins
    assert lookup("gpt-4o-mini-2024-07-18", cfg) == negotiated  # snapshot of a configured one
    assert lookup("fast-eu", cfg) == Price(9.0, 9.0)
    # a model without price: falls back to the built-in table by its upstream name
    assert resolve("smart", cfg) == ("built-in:gpt-4.1", BUILTIN["gpt-4.1"])
    # an explicit price of zeros means free, not "unset"
    assert resolve("free", cfg) == ("config", Price())
    # an Azure deployment name is unknown; the keel name is a known model
    assert lookup("gpt-4o", cfg) == BUILTIN["gpt-4o"]
    assert lookup("house", cfg) is None
    m = cfg.models[5]
    assert model_price(m) is None


# --- the gateway -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeOpenAI, str]]:
    f = FakeOpenAI()
    with serve(f.app) as server:
        yield f, server.url


def test_gateway_costs_unpriced_model_from_builtin_table(
        tmp_path: Path, upstream: tuple[FakeOpenAI, str]) -> None:
    fake, url = upstream
    # usage: 11 prompt tokens (4 cached), 7 completion tokens (2 of them reasoning)
    assert fake.usage["prompt_tokens"] == 11 and fake.usage["completion_tokens"] == 7
    cfg = {
        "providers": [{"name": "up", "kind": "openai", "base_url": url + "/v1"}],
        "models": [
            {"name": "chat", "provider": "up", "upstream": "gpt-4o-mini"},
            {"name": "free", "provider": "up", "upstream": "gpt-4o", "price": {}},
            {"name": "tiered", "provider": "up", "upstream": "house-model", "price": {
                "input_per_mtok": 1.0, "output_per_mtok": 2.0, "per_request_usd": 0.01,
                "tiers": [{"above_input_tokens": 10, "input_per_mtok": 3.0,
                           "output_per_mtok": 4.0}]}},
            {"name": "unknown", "provider": "up", "upstream": "house-model"},
        ],
    }
    with running_keel(tmp_path, cfg) as k:
        client = openai.OpenAI(base_url=k.base_url, api_key=k.admin_key, max_retries=0)
        for model in ("chat", "free", "tiered", "unknown"):
            client.chat.completions.create(model=model,
                                           messages=[{"role": "user", "content": "hi"}])
        k.flush()
        rows, _ = k.run(list_traces(k.state.store, TraceFilter(), limit=10))
    cost = {r["model_requested"]: r["cost_usd"] for r in rows}
    # gpt-4o-mini, built in: $0.15 input, $0.075 cached input, $0.60 output per Mtok
    assert cost["chat"] == pytest.approx((7 * 0.15 + 4 * 0.075 + 7 * 0.60) / M)
    assert cost["chat"] == pytest.approx(5.55e-6)
    assert cost["free"] == 0.0
    # 11 input tokens > 10: the tier's rates (cached at the tier's input rate), plus the fee
    assert cost["tiered"] == pytest.approx((7 * 3.0 + 4 * 3.0 + 7 * 4.0) / M + 0.01)
    assert cost["unknown"] == 0.0


# --- repricing -------------------------------------------------------------------------------

T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp()
DAY = 86400.0


def _trace(start: float, model: str, *, served: str | None = None, feature: str = "support",
           cost: float = 0.0, status: int = 200, cache_hit: bool = False,
           usage: Usage | None = None) -> Trace:
    t = Trace(id=new_trace_id(), start_time=start, endpoint="chat", team="cx", feature=feature,
              model_requested=model, model_served=served or model, attempts=1,
              usage=usage if usage is not None else Usage(
                  input_tokens=1000, output_tokens=100, cached_tokens=200))
    t.finish(status)
    t.end_time = start + 0.5
    t.cost_usd = cost
    t.cache_hit = cache_hit
    return t


def _seed() -> list[Trace]:
    return [
        _trace(T0 + 3600, "gpt-4o"),
        _trace(T0 + 7200, "gpt-4o", feature="search", cost=0.5),
        _trace(T0 + DAY + 100, "chat-route", served="gpt-4o-2024-08-06"),
        _trace(T0 + DAY + 200, "gpt-4o", cache_hit=True, usage=Usage()),
        _trace(T0 + DAY + 300, "gpt-4o", status=502, usage=Usage()),
        _trace(T0 + DAY + 400, "gpt-4o-mini", cost=0.25),  # another model: untouched
        _trace(T0 + DAY + 500, "chat-route", served="gpt-4o-mini-2024-07-18", cost=0.125),
        _trace(T0 + 3 * DAY, "gpt-4o"),  # after `until`
    ]


REPRICE_CONFIG = KeelConfig(
    providers=[ProviderConfig(name="mock", kind="mock")],
    models=[ModelConfig(name="gpt-4o", provider="mock",
                        price=PriceSpec(input_per_mtok=1.0, output_per_mtok=2.0,
                                        cached_input_per_mtok=0.5))])
NEW_COST = (800 * 1.0 + 200 * 0.5 + 100 * 2.0) / M


async def _rollup_vs_traces(store: Store) -> tuple[dict[str, float], float]:
    async with store.connect() as conn:
        by_g = {g: float(v or 0.0) for g, v in (await conn.execute(
            sa.select(rollups.c.granularity, sa.func.sum(rollups.c.cost_usd))
            .group_by(rollups.c.granularity))).all()}
        total = float((await conn.execute(sa.select(sa.func.sum(traces.c.cost_usd)))).scalar_one())
    return by_g, total


async def _costs(store: Store) -> dict[str, float]:
    async with store.connect() as conn:
        return {str(i): float(c) for i, c in (await conn.execute(
            sa.select(traces.c.id, traces.c.cost_usd))).all()}


async def test_reprice_updates_traces_rollups_and_records_an_event(store: Store) -> None:
    seeded = _seed()
    await insert_rows(store, [trace_values(t) for t in seeded], [])
    before = await _costs(store)
    rollups_before, _ = await _rollup_vs_traces(store)

    dry = await reprice(store, REPRICE_CONFIG, "gpt-4o", T0, T0 + 2 * DAY, dry_run=True,
                        batch=2)
    assert (dry.traces, dry.changed, dry.skipped) == (3, 3, 2)
    assert dry.cost_before_usd == pytest.approx(0.5)
    assert dry.cost_after_usd == pytest.approx(3 * NEW_COST)
    assert dry.event_id is None and dry.price_source == "config"
    assert await _costs(store) == before  # a dry run writes nothing
    assert (await _rollup_vs_traces(store))[0] == rollups_before
    assert await list_events(store) == []

    done = await reprice(store, REPRICE_CONFIG, "gpt-4o", T0, T0 + 2 * DAY, actor="ops",
                         batch=2)
    assert (done.traces, done.changed) == (3, 3) and done.event_id is not None
    assert [d for d in done.days] == [T0, T0 + DAY]
    after = await _costs(store)
    ids = [t.id for t in seeded]
    assert after[ids[0]] == pytest.approx(NEW_COST) and after[ids[1]] == pytest.approx(NEW_COST)
    assert after[ids[2]] == pytest.approx(NEW_COST)  # served as a gpt-4o snapshot
    assert after[ids[3]] == 0.0 and after[ids[4]] == 0.0  # cache hit; failed without tokens
    assert after[ids[5]] == 0.25 and after[ids[6]] == 0.125  # other models
    assert after[ids[7]] == 0.0  # outside the window

    by_g, total = await _rollup_vs_traces(store)
    assert total == pytest.approx(3 * NEW_COST + 0.25 + 0.125)
    assert by_g == {"m": pytest.approx(total), "h": pytest.approx(total),
                    "d": pytest.approx(total)}
    # per feature, the daily rollups match the traces too
    async with store.connect() as conn:
        per_feature = dict((await conn.execute(
            sa.select(rollups.c.feature, sa.func.sum(rollups.c.cost_usd))
            .where(rollups.c.granularity == "d").group_by(rollups.c.feature))).all())
        requests = (await conn.execute(sa.select(sa.func.sum(rollups.c.requests)).where(
            rollups.c.granularity == "d"))).scalar_one()
    assert per_feature["search"] == pytest.approx(NEW_COST)
    assert per_feature["support"] == pytest.approx(2 * NEW_COST + 0.25 + 0.125)
    assert requests == len(seeded)  # rebuilt, not double counted

    events = await list_events(store)
    assert len(events) == 1
    e = events[0]
    assert (e["action"], e["model"], e["since"], e["until"], e["traces"], e["actor"]) == (
        "reprice", "gpt-4o", T0, T0 + 2 * DAY, 3, "ops")
    assert e["cost_before_usd"] == pytest.approx(0.5)
    assert e["cost_after_usd"] == pytest.approx(3 * NEW_COST)
    assert orjson.loads(e["detail"])["days"] == ["2026-11-02", "2026-11-03"]

    # running it again changes nothing more, and is recorded again
    again = await reprice(store, REPRICE_CONFIG, "gpt-4o", T0, T0 + 2 * DAY)
    assert (again.traces, again.changed) == (3, 0)
    assert again.cost_before_usd == pytest.approx(again.cost_after_usd)
    async with store.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(cost_events))
                ).scalar_one() == 2


async def test_reprice_refuses_bad_input(store: Store) -> None:
    with pytest.raises(InvalidRequest, match="unknown model 'house-model'") as exc:
        await reprice(store, REPRICE_CONFIG, "house-model", T0)
    assert exc.value.status == 400 and exc.value.param == "model"
    with pytest.raises(InvalidRequest, match="'until' must be after 'since'"):
        await reprice(store, REPRICE_CONFIG, "gpt-4o", T0, T0)
    # a model only the built-in table knows can be repriced
    ok = await reprice(store, REPRICE_CONFIG, "gpt-4.1-mini", T0, dry_run=True)
    assert ok.price_source == "built-in:gpt-4.1-mini" and ok.traces == 0


def test_day_labels_are_utc_days() -> None:
    from keel.costs.times import day_label

    assert day_label(T0) == "2026-11-02" and day_label(T0 + DAY - 1) == "2026-11-02"
    assert day_label(T0 + DAY) == "2026-11-03"


# --- spend -----------------------------------------------------------------------------------


def _spend_seed() -> list[Trace]:
    return [
        _trace(T0 + 3600, "gpt-4o", feature="support", cost=0.25),
        _trace(T0 + 7200, "gpt-4o", feature="support", cost=0.125),
        _trace(T0 + 7300, "gpt-4o-mini", feature="search", cost=0.5),
        _trace(T0 + DAY + 60, "gpt-4o", feature="support", cost=1.0),
        _trace(T0 + 5 * DAY, "gpt-4o", feature="support", cost=8.0),  # outside the window
    ]


async def test_spend_from_rollups(store: Store) -> None:
    await insert_rows(store, [trace_values(t) for t in _spend_seed()], [])
    report = await spend(store, T0, T0 + 3 * DAY, ("feature", "day"))
    assert report.granularity == "d" and (report.since, report.until) == (T0, T0 + 3 * DAY)
    assert [(r["feature"], r["day"], r["requests"], r["cost_usd"]) for r in report.rows] == [
        ("search", "2026-11-02", 1, 0.5), ("support", "2026-11-02", 2, 0.375),
        ("support", "2026-11-03", 1, 1.0)]
    assert report.total["cost_usd"] == pytest.approx(1.875) and report.total["requests"] == 4
    hourly = await spend(store, T0, T0 + DAY, ("model",))
    assert hourly.granularity == "h"
    assert {r["model"]: r["cost_usd"] for r in hourly.rows} == {"gpt-4o": 0.375,
                                                                "gpt-4o-mini": 0.5}
    overall = await spend(store, T0, T0 + 10 * DAY)
    assert [r["cost_usd"] for r in overall.rows] == [pytest.approx(9.875)]
    with pytest.raises(InvalidRequest):
        await spend(store, T0, T0)


def test_costs_api_spend_reprice_and_events(tmp_path: Path, database_url: str) -> None:
    cfg = {"providers": [{"name": "mock", "kind": "mock"}],
           "models": [{"name": "gpt-4o", "provider": "mock",
                       "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0,
                                 "cached_input_per_mtok": 0.5}}]}
    with running_keel(tmp_path, cfg, database_url=database_url) as k:
        k.run(insert_rows(k.state.store, [trace_values(t) for t in _spend_seed()], []))
        h = k.admin_headers()
        api = k.url + "/api/costs"
        window = {"from": "2026-11-02", "to": "2026-11-05"}
        r = httpx.get(api + "/spend", headers=h, params={**window, "group_by": "feature,day"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["granularity"], body["group_by"]) == ("day", ["feature", "day"])
        assert [(x["feature"], x["day"], x["cost_usd"]) for x in body["data"]] == [
            ("search", "2026-11-02", 0.5), ("support", "2026-11-02", 0.375),
            ("support", "2026-11-03", 1.0)]
        assert body["total"]["cost_usd"] == 1.875

        r = httpx.get(api + "/spend", headers=h,
                      params={**window, "group_by": "team,model", "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert rows[0].keys() >= {"team", "model", "requests", "cost_usd", "input_tokens"}
        assert {(x["team"], x["model"]): (int(x["requests"]), float(x["cost_usd"]))
                for x in rows} == {("cx", "gpt-4o"): (3, 1.375), ("cx", "gpt-4o-mini"): (1, 0.5)}

        for params, param in (({"group_by": "colour"}, "group_by"),
                              ({"from": "last tuesday"}, "from"),
                              ({"from": "2026-11-05", "to": "2026-11-02"}, "to"),
                              ({"format": "xml"}, "format")):
            bad = httpx.get(api + "/spend", headers=h, params=params)
            assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
        key = k.create_key(team="cx")
        assert httpx.get(api + "/spend", headers={"authorization": f"Bearer {key}"}
                         ).status_code == 403

        req = {"model": "gpt-4o", "since": "2026-11-02", "until": "2026-11-04"}
        dry = httpx.post(api + "/reprice", headers=h, json={**req, "dry_run": True})
        assert dry.status_code == 200, dry.text
        d = dry.json()
        assert (d["traces"], d["changed"], d["dry_run"], d["event_id"]) == (3, 3, True, None)
        assert d["cost_before_usd"] == pytest.approx(1.375)
        assert d["cost_after_usd"] == pytest.approx(3 * NEW_COST)
        assert "budgets are not adjusted" in d["note"]
        assert httpx.get(api + "/events", headers=h).json()["data"] == []

        done = httpx.post(api + "/reprice", headers=h, json={**req, "actor": "finops"}).json()
        assert done["changed"] == 3 and done["days"] == ["2026-11-02", "2026-11-03"]
        r = httpx.get(api + "/spend", headers=h, params={**window, "group_by": "model"})
        by_model = {x["model"]: x["cost_usd"] for x in r.json()["data"]}
        assert by_model == {"gpt-4o": pytest.approx(3 * NEW_COST), "gpt-4o-mini": 0.5}
        events = httpx.get(api + "/events", headers=h).json()["data"]
        assert [(e["id"], e["model"], e["actor"], e["traces"]) for e in events] == [
            (done["event_id"], "gpt-4o", "finops", 3)]
        assert events[0]["detail"]["price_source"] == "config"

        for payload, param in (({"model": "house-model", "since": "2026-11-02"}, "model"),
                               ({"since": "2026-11-02"}, "model"),
                               ({"model": "gpt-4o"}, "since"),
                               ({"model": "gpt-4o", "since": "soon"}, "since"),
                               ({"model": "gpt-4o", "since": "2026-11-02", "until": "2026-11-01"},
                                "until"),
                               ({"model": "gpt-4o", "since": "2026-11-02", "dry_run": "yes"},
                                "dry_run")):
            bad = httpx.post(api + "/reprice", headers=h, json=payload)
            assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
        assert httpx.post(api + "/reprice", json=req).status_code == 401


# --- CLI -------------------------------------------------------------------------------------


def test_costs_cli(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import keel.cli.costs as cli

    monkeypatch.setattr(cli.console, "width", 160)
    cfg_file = tmp_path / "keel.yaml"
    cfg_file.write_bytes(orjson.dumps({
        "providers": [{"name": "mock", "kind": "mock"}],
        "models": [{"name": "gpt-4o", "provider": "mock",
                    "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0,
                              "cached_input_per_mtok": 0.5}},
                   {"name": "mini", "provider": "mock", "upstream": "gpt-4o-mini"}]}))
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url,
           "KEEL_CONFIG": str(cfg_file)}

    async def seed() -> None:
        store = Store(database_url)
        await store.upgrade()
        await insert_rows(store, [trace_values(t) for t in _spend_seed()], [])
        await store.aclose()

    asyncio.run(seed())

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        return result.exit_code, result.output

    code, out = run("costs", "spend", "--by", "feature,day", "--since", "2026-11-02",
                    "--until", "2026-11-05", "--csv")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["feature"], r["day"], float(r["cost_usd"])) for r in rows] == [
        ("search", "2026-11-02", 0.5), ("support", "2026-11-02", 0.375),
        ("support", "2026-11-03", 1.0)]
    code, out = run("costs", "spend", "--by", "model", "--since", "2026-11-02",
                    "--until", "2026-11-05")
    assert code == 0 and "gpt-4o-mini" in out and "total" in out
    code, out = run("costs", "spend", "--by", "colour")
    assert code == 2 and "cannot group by 'colour'" in out
    code, out = run("costs", "spend", "--since", "last week")
    assert code == 2 and "--since" in out

    code, out = run("costs", "reprice", "--model", "gpt-4o", "--since", "2026-11-02",
                    "--until", "2026-11-04", "--dry-run", "--json")
    assert code == 0, out
    dry = orjson.loads(out)
    assert (dry["traces"], dry["changed"], dry["event_id"]) == (3, 3, None)
    code, out = run("costs", "reprice", "--model", "gpt-4o", "--since", "2026-11-02",
                    "--until", "2026-11-04", "--dry-run")
    assert code == 0 and "dry run: nothing written" in out
    code, out = run("costs", "events", "--json")
    assert code == 0 and out.strip() == ""
    code, out = run("costs", "reprice", "--model", "gpt-4o", "--since", "2026-11-02",
                    "--until", "2026-11-04", "--actor", "ops")
    assert code == 0 and "recorded as cost event #" in out and "budgets are not adjusted" in out
    code, out = run("costs", "events", "--json")
    events = [orjson.loads(line) for line in out.splitlines()]
    assert [(e["model"], e["actor"], e["traces"]) for e in events] == [("gpt-4o", "ops", 3)]
    code, out = run("costs", "events")
    assert code == 0 and "gpt-4o" in out

    code, out = run("costs", "reprice", "--model", "house-model", "--since", "2026-11-02")
    assert code == 2 and "unknown model 'house-model'" in out
    code, out = run("costs", "reprice", "--model", "gpt-4o", "--since", "someday")
    assert code == 2 and "--since" in out
    code, out = run("costs", "reprice", "--model", "gpt-4o", "--since", "2026-11-04",
                    "--until", "2026-11-02")
    assert code == 2 and "'until' must be after 'since'" in out

    code, out = run("costs", "prices", "--json")
    prices = orjson.loads(out)
    assert prices["built_in_as_of"] == PRICES_AS_OF
    assert [(m["model"], m["source"]) for m in prices["models"]] == [
        ("gpt-4o", "config"), ("mini", "built-in:gpt-4o-mini")]
    code, out = run("costs", "prices")
    assert code == 0 and "built-in:gpt-4o-mini" in out
