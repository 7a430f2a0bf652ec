"""Summary query benchmark: `keel.monitor.measures.summary` over 1,000,000 stored traces.

    .venv/bin/python bench/summary.py                    # 1M traces, SQLite and PostgreSQL
    .venv/bin/python bench/summary.py --traces 50000 --output /tmp/summary.md   # quick check

What it does, for each store (a fresh SQLite file under bench/.work/keel-summary-*/, and a
fresh PostgreSQL database, created through a connection to the server's `postgres`
database; both removed at the end unless --keep):

* `Store(url)` + `await store.upgrade()`, then generates N traces spread over the 30 days
  before the start of the run (a diurnal and weekly volume pattern with some growth, 6
  features owned by 4 teams, 5 models, prompt versions rolled out over the month with a
  2-day canary ramp, ~2% errors of 5 types, lognormal token counts and latencies, TTFT on
  the streamed half, prompt-cache reads, ~2% keel cache hits, costs from real-looking
  prices) and writes them in time order through `keel.store.traces.insert_rows` in batches
  of 500 (the trace writer's batch size), so the rollups are built incrementally, batch by
  batch, in the same transactions as the traces, as in production. 1% of the traces carry a
  tiny request/response payload. Business outcomes (the value units of 3 features, about 3%
  of the traces) are stored with their rollups in their own transactions. PostgreSQL then
  gets `VACUUM (ANALYZE)` (what autovacuum does soon after a bulk load); SQLite nothing;
* after the data is written, times `summary()` warm (one untimed call, then 20 timed calls,
  `time.perf_counter()` around the whole awaited call: SQL, fetch and the Python that
  merges the sketches): over the 30-day window overall, by feature with value units, by
  feature and model, filtered to one feature; over 7 days by feature (hour buckets); and
  over 6 hours (minute buckets). For contrast, the same 30-day totals per feature computed
  from the raw `traces` rows with one `GROUP BY feature` query (counts and sums only);
* writes the figures into bench/RESULTS.md between `<!-- summary:start -->` and
  `<!-- summary:end -->` (replacing that section, or appending it), with PASS/FAIL against
  the target (the 30-day summary in under 300 ms) for each dialect. bench/report.py keeps
  the section when the gateway bench rewrites the file.

See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import math
import random
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from common import loadavg, log, machine, write_section
from sqlalchemy import event

from keel.monitor.measures import Filters, summary
from keel.store import Store
from keel.store.rollups import Deltas, apply
from keel.store.schema import outcomes
from keel.store.traces import insert_rows, payload_values, trace_values
from keel.types import Price, Trace, Usage

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
START, END = "<!-- summary:start -->", "<!-- summary:end -->"
TARGET_MS = 300.0
DAY = 86400.0

# --- the traffic ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    name: str
    provider: str
    price: Price
    ttft_ms: float  # median time to first token
    ms_per_token: float  # median generation time per output token
    error_rate: float
    prompt_cache: float  # share of requests that read the provider's prompt cache


MODELS = {m.name: m for m in (
    Model("gpt-4o", "openai", Price(2.5, 10.0, cached_input_per_mtok=1.25), 450, 11, 0.016, 0.3),
    Model("gpt-4o-mini", "openai", Price(0.15, 0.6, cached_input_per_mtok=0.075), 320, 7,
          0.016, 0.3),
    Model("claude-3-5-sonnet", "anthropic", Price(3.0, 15.0, cached_input_per_mtok=0.3), 700,
          13, 0.03, 0.4),
    Model("claude-3-5-haiku", "anthropic", Price(0.8, 4.0, cached_input_per_mtok=0.08), 420, 8,
          0.018, 0.4),
    Model("gemini-1.5-flash", "gemini", Price(0.075, 0.3, cached_input_per_mtok=0.01875), 280,
          5, 0.022, 0.1),
)}


@dataclass(frozen=True)
class Feature:
    name: str
    weight: float  # share of the traffic
    teams: dict[str, float]
    models: dict[str, float]
    stream: float  # share of streamed requests (only those have a TTFT)
    input_tokens: tuple[float, float]  # lognormal: median, sigma
    output_tokens: tuple[float, float]
    cache_hits: float = 0.0  # share answered from keel's response cache
    prompt: str | None = None
    releases: tuple[tuple[float, int], ...] = ()  # (day of the window, version)
    outcome: tuple[str, float] | None = None  # (value unit, outcomes per trace)


FEATURES = (
    Feature("support-chat", 0.30, {"support": 0.85, "sales": 0.15},
            {"gpt-4o-mini": 0.6, "claude-3-5-haiku": 0.3, "gpt-4o": 0.1}, 0.85, (1800, 0.5),
            (220, 0.6), 0.03, "support-agent", ((0, 3), (9, 4), (21, 5)),
            ("ticket_resolved", 0.05)),
    Feature("search-answer", 0.22, {"growth": 1.0}, {"gpt-4o-mini": 0.7, "gemini-1.5-flash": 0.3},
            0.6, (3500, 0.4), (180, 0.5), 0.05, "search-rag", ((0, 11), (16, 12))),
    Feature("summarize", 0.15, {"platform": 0.6, "support": 0.4},
            {"claude-3-5-sonnet": 0.5, "gpt-4o": 0.5}, 0.1, (6000, 0.7), (350, 0.4)),
    Feature("code-review", 0.10, {"platform": 1.0}, {"claude-3-5-sonnet": 0.8, "gpt-4o": 0.2},
            0.4, (9000, 0.6), (600, 0.5), 0.0, "code-review", ((0, 2),), ("pr_merged", 0.05)),
    Feature("email-draft", 0.13, {"sales": 0.7, "growth": 0.3},
            {"gpt-4o": 0.4, "gpt-4o-mini": 0.6}, 0.5, (900, 0.4), (300, 0.4), 0.0,
            "email-draft", ((0, 6), (5, 7), (25, 8)), ("email_sent", 0.08)),
    Feature("classify", 0.10, {"support": 0.5, "platform": 0.5},
            {"gemini-1.5-flash": 0.5, "gpt-4o-mini": 0.5}, 0.0, (450, 0.3), (6, 0.3), 0.02),
)
VALUE_UNITS = {f.name: f.outcome[0] for f in FEATURES if f.outcome}
ERRORS = (  # (error_type, HTTP status, share of the errors)
    ("upstream_rate_limited", 429, 0.35), ("upstream_timeout", 504, 0.20),
    ("upstream_error", 502, 0.20), ("upstream_unavailable", 503, 0.10),
    ("invalid_request_error", 400, 0.15),
)
ERROR_KINDS = [(e, s) for e, s, _ in ERRORS]
ERROR_CUM = list(itertools.accumulate(w for _, _, w in ERRORS))
CANARY_DAYS = 2.0


def volume(t: float, start: float, span: float) -> float:
    """Relative request rate at t: busy UTC office hours, quiet nights and weekends, +30%
    growth over the window. At most 1.3 * 1.15."""
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    hour = d.hour + d.minute / 60
    diurnal = 0.15 + math.exp(-(((hour - 14.0) / 4.5) ** 2))
    weekly = 0.45 if d.weekday() >= 5 else 1.0
    return diurnal * weekly * (1.0 + 0.3 * (t - start) / span)


def cum(weights: dict[str, float]) -> tuple[list[str], list[float]]:
    return list(weights), list(itertools.accumulate(weights.values()))


class Traffic:
    """Deterministic (seeded) traces in time order, in batches."""

    def __init__(self, n: int, start: float, end: float, seed: int,
                 payload_share: float) -> None:
        self.n, self.start, self.end = n, start, end
        self.rng = random.Random(seed)
        self.payload_share = payload_share
        self.keys = {(team, f.name): f"k{self.rng.getrandbits(48):012x}"
                     for f in FEATURES for team in f.teams}
        self._fw = (list(FEATURES), list(itertools.accumulate(f.weight for f in FEATURES)))
        self._choices = {f.name: (cum(f.teams), cum(f.models)) for f in FEATURES}

    def times(self) -> list[float]:
        """n start times drawn from `volume` (rejection sampling), sorted."""
        rng, span = self.rng, self.end - self.start
        top = 1.15 * 1.3
        out: list[float] = []
        while len(out) < self.n:
            t = self.start + rng.random() * span
            if rng.random() * top < volume(t, self.start, span):
                out.append(t)
        out.sort()
        return out


    def _version(self, f: Feature, t: float) -> int | None:
        if not f.prompt:
            return None
        day = (t - self.start) / DAY
        current = [r for r in f.releases if r[0] <= day]
        at, version = current[-1]
        if len(current) > 1 and day < at + CANARY_DAYS \
                and self.rng.random() > (day - at) / CANARY_DAYS:
            return current[-2][1]
        return version

    def trace(self, t: float) -> Trace:
        rng = self.rng
        f = rng.choices(self._fw[0], cum_weights=self._fw[1])[0]
        teams, models = self._choices[f.name]
        team = rng.choices(teams[0], cum_weights=teams[1])[0]
        model = MODELS[rng.choices(models[0], cum_weights=models[1])[0]]
        version = self._version(f, t)
        stream = rng.random() < f.stream
        ms = int(t * 1000)
        tr = Trace(
            id=f"{ms:012x}{rng.getrandbits(80):020x}", start_time=t,
            endpoint="/v1/chat/completions", key_id=self.keys[(team, f.name)], team=team,
            feature=f.name, user=f"u{rng.randrange(20000):05d}",
            session=f"s{rng.getrandbits(40):010x}" if f.name == "support-chat" else None,
            model_requested=model.name, model_served=model.name, provider=model.provider,
            attempts=1, stream=stream, prompt_name=f.prompt if version else None,
            prompt_version=version)
        if rng.random() < model.error_rate:
            etype, status = rng.choices(ERROR_KINDS, cum_weights=ERROR_CUM)[0]
            tr.status, tr.error_type = status, etype
            tr.error_message = f"{etype.replace('_', ' ')} ({model.provider})"
            tr.attempts = rng.choice((1, 2, 3)) if status >= 500 or status == 429 else 1
            tr.latency_ms = (rng.uniform(30000, 60000) if etype == "upstream_timeout"
                             else rng.lognormvariate(math.log(150 if status == 429 else 800),
                                                     0.6))
        else:
            n_in = max(1, int(rng.lognormvariate(math.log(f.input_tokens[0]),
                                                 f.input_tokens[1])))
            n_out = max(1, int(rng.lognormvariate(math.log(f.output_tokens[0]),
                                                  f.output_tokens[1])))
            cached = (int(n_in * rng.uniform(0.5, 0.9))
                      if rng.random() < model.prompt_cache and n_in >= 1024 else 0)
            tr.usage = Usage(input_tokens=n_in, output_tokens=n_out, cached_tokens=cached)
            cost = model.price.cost(tr.usage)
            if rng.random() < f.cache_hits:
                tr.cache_hit, tr.cost_saved_usd = True, cost
                tr.latency_ms = rng.lognormvariate(math.log(4.0), 0.5)
                if stream:
                    tr.ttft_ms = tr.latency_ms * 0.8
            else:
                tr.cost_usd = cost
                ttft = model.ttft_ms * rng.lognormvariate(0, 0.35) * (1 + n_in / 20000)
                gen = n_out * model.ms_per_token * rng.lognormvariate(0, 0.25)
                slow = rng.lognormvariate(1.0, 0.5) if rng.random() < 0.01 else 1.0
                tr.latency_ms = (ttft + gen) * slow
                if stream:
                    tr.ttft_ms = ttft * slow
        tr.end_time = t + tr.latency_ms / 1000
        if rng.random() < self.payload_share:
            tr.request_body = {"model": model.name, "stream": stream,
                               "messages": [{"role": "user", "content": "Where is my order?"}]}
            tr.response_body = {"choices": [{"index": 0, "message": {
                "role": "assistant", "content": "It ships tomorrow."}}]}
        return tr

    def outcome(self, tr: Trace) -> dict[str, Any] | None:
        f = next(x for x in FEATURES if x.name == tr.feature)
        if not f.outcome or tr.status >= 400 or self.rng.random() >= f.outcome[1]:
            return None
        return {"id": f"o{self.rng.getrandbits(96):024x}", "name": f.outcome[0], "value": 1.0,
                "feature": f.name, "team": tr.team, "trace_ids": [tr.id],
                "at": min(tr.start_time + self.rng.uniform(60, 3600), self.end - 0.001),
                "key_id": tr.key_id}

    def batches(self, size: int) -> Iterator[list[Trace]]:
        times = self.times()
        for i in range(0, len(times), size):
            yield [self.trace(t) for t in times[i:i + size]]


# --- one store --------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    window: str
    values_ms: list[float]
    groups: int = 0
    per_table: dict[str, float] = field(default_factory=dict)  # median SQL ms per table
    sketch_rows: int | None = None  # rollup_sketches rows the call's WHERE selects
    plans: list[tuple[str, str, str]] = field(default_factory=list)  # (table, SQL, plan)

    @property
    def python_ms(self) -> float:
        """The median call minus the medians of its statements: a pooled connection,
        building and compiling the queries, merging the sketches, the measures."""
        return self.median - sum(self.per_table.values())

    @property
    def median(self) -> float:
        return statistics.median(self.values_ms)

    @property
    def p95(self) -> float:
        s = sorted(self.values_ms)
        return s[max(0, math.ceil(0.95 * len(s)) - 1)]


@dataclass
class Result:
    dialect: str
    url: str
    traces: int = 0
    outcomes: int = 0
    payloads: int = 0
    gen_s: float = 0.0  # the whole generation: building traces + insert_rows + outcomes
    insert_s: float = 0.0  # inside insert_rows only
    outcome_s: float = 0.0
    prep_s: float = 0.0  # e.g. VACUUM ANALYZE
    prep_note: str = ""
    measure_s: float = 0.0
    timings: list[Timing] = field(default_factory=list)
    rollup_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    db_bytes: int = 0
    checks: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    server: str = ""

    def timing(self, name: str) -> Timing | None:
        return next((t for t in self.timings if t.name == name), None)




async def generate(store: Store, res: Result, args: argparse.Namespace, start: float,
                   end: float) -> None:
    traffic = Traffic(args.traces, start, end, args.seed, args.payload_share)
    t0 = time.perf_counter()
    step = max(1, args.traces // 10)
    next_report = step
    for batch in traffic.batches(args.batch):
        rows = [trace_values(t) for t in batch]
        payloads = [p for p in (payload_values(t) for t in batch) if p is not None]
        a = time.perf_counter()
        await insert_rows(store, rows, payloads)
        res.insert_s += time.perf_counter() - a
        res.traces += len(rows)
        res.payloads += len(payloads)
        outs = [o for o in (traffic.outcome(t) for t in batch) if o is not None]
        if outs:
            # as keel.store.feedback.insert_outcome does, for a batch: rows + their rollups
            # in one transaction
            a = time.perf_counter()
            d = Deltas()
            for o in outs:
                d.add_outcome(o)
            async with store.begin() as conn:
                await conn.execute(outcomes.insert(), outs)
                await apply(conn, store, d)
            res.outcome_s += time.perf_counter() - a
            res.outcomes += len(outs)
        if res.traces >= next_report:
            el = time.perf_counter() - t0
            log(f"  {res.dialect}: {res.traces:,} traces in {el:.0f} s "
                f"({res.traces / el:,.0f}/s end to end, {res.traces / res.insert_s:,.0f}/s "
                "in insert_rows)")
            next_report += step
    res.gen_s = time.perf_counter() - t0


class StatementLog:
    """Per-statement wall time (execute + fetch: the async adapters fetch every row inside
    execute) of the SQL run while it is active, with the statements and their parameters."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine.sync_engine
        self.items: list[tuple[str, Any, float]] = []
        self._t = 0.0

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                executemany: bool) -> None:
        self._t = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
               executemany: bool) -> None:
        self.items.append((statement, params, (time.perf_counter() - self._t) * 1000))

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


def table_of(sql: str) -> str:
    m = re.search(r"\bFROM\s+\"?(\w+)", sql, re.I)
    return m.group(1) if m else "?"


async def timed(store: Store, fn: Callable[[], Awaitable[Any]], repeat: int,
                ) -> tuple[list[float], dict[str, float], list[tuple[str, Any]], Any]:
    """One untimed call, then `repeat` timed ones. Returns the times (ms), the median time per
    table queried (ms), the statements of one call with their parameters, and the answer."""
    out = await fn()  # warm: untimed
    times: list[float] = []
    per_table: dict[str, list[float]] = {}
    with StatementLog(store) as sl:
        for _ in range(repeat):
            sl.items.clear()
            a = time.perf_counter()
            out = await fn()
            times.append((time.perf_counter() - a) * 1000)
            for sql, _, t in sl.items:
                per_table.setdefault(table_of(sql), []).append(t)
        stmts = [(sql, params) for sql, params, _ in sl.items]
    return times, {k: statistics.median(v) for k, v in per_table.items()}, stmts, out


RAW_SQL = ("SELECT feature, count(*), sum(cost_usd), sum(input_tokens), sum(output_tokens), "
           "sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END), sum(latency_ms) FROM traces "
           "WHERE start_time >= {a} AND start_time < {b} GROUP BY feature")
PLANNED = ("30 d overall", "7 d by feature", "raw traces, GROUP BY feature")


async def explain(store: Store, dialect: str, sql: str, params: Any) -> str:
    async with store.connect() as conn:
        if dialect == "sqlite":
            rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)).all()
            return "\n".join(str(r[-1]) for r in rows)
        rows = (await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)).all()
        return "\n".join(str(r[0]) for r in rows)


async def rows_read(store: Store, sql: str, params: Any) -> int | None:
    """How many rows the WHERE of a sketch or errors statement selects (they have no
    parameters before it, so the same parameters fit)."""
    m = re.search(r"\bFROM\b.*?(?=\bGROUP BY\b|$)", sql, re.S | re.I)
    if not m:
        return None
    async with store.connect() as conn:
        return int((await conn.exec_driver_sql(
            "SELECT count(*) " + m.group(0), params)).scalar_one())


async def measure(store: Store, res: Result, args: argparse.Namespace, end: float) -> None:
    t0 = time.perf_counter()
    since30, since7, since6h = end - 30 * DAY, end - 7 * DAY, end - 6 * 3600
    one = "support-chat"
    cases: list[tuple[str, str, Callable[[], Awaitable[Any]]]] = [
        ("30 d overall", "30 d, day buckets", lambda: summary(store, since30, end)),
        ("30 d by feature, value units", "30 d, day buckets",
         lambda: summary(store, since30, end, group_by=("feature",), value_units=VALUE_UNITS)),
        ("30 d by feature, model", "30 d, day buckets",
         lambda: summary(store, since30, end, group_by=("feature", "model"))),
        (f"30 d, feature = {one}", "30 d, day buckets",
         lambda: summary(store, since30, end, filters=Filters(feature=one),
                         value_units=VALUE_UNITS)),
        ("7 d by feature", "7 d, hour buckets",
         lambda: summary(store, since7, end, group_by=("feature",), value_units=VALUE_UNITS)),
        ("6 h overall", "6 h, minute buckets", lambda: summary(store, since6h, end)),
    ]
    outs: dict[str, Any] = {}
    for name, window, fn in cases:
        times, per_table, stmts, out = await timed(store, fn, args.repeat)
        outs[name] = out
        t = Timing(name, window, times, len(out["groups"]), per_table=per_table)
        for sql, params in stmts:
            if table_of(sql) == "rollup_sketches":
                t.sketch_rows = await rows_read(store, sql, params)
            if name in PLANNED:
                t.plans.append((table_of(sql), sql.strip(),
                                await explain(store, res.dialect, sql, params)))
        res.timings.append(t)
        log(f"  {res.dialect}: {name}: median {t.median:.1f} ms, p95 {t.p95:.1f} ms, "
            f"{t.groups} group(s), {t.sketch_rows or 0:,} sketch rows; per table "
            + ", ".join(f"{k} {v:.1f}" for k, v in per_table.items()))

    raw = RAW_SQL.format(a=repr(float(since30)), b=repr(float(end)))

    async def raw_scan() -> list[Any]:
        async with store.connect() as conn:
            return list((await conn.exec_driver_sql(raw)).all())

    times, per_table, _, raw_rows = await timed(store, raw_scan, args.raw_repeat)
    t = Timing("raw traces, GROUP BY feature", "30 d, raw rows", times, len(raw_rows),
               per_table=per_table)
    t.plans.append(("traces", raw, await explain(store, res.dialect, raw, ())))
    res.timings.append(t)
    log(f"  {res.dialect}: raw scan: median {t.median:.0f} ms")

    # consistency: the rollups hold what the raw rows hold
    total = outs["30 d overall"]["groups"][0]
    raw_n = sum(int(r[1]) for r in raw_rows)
    raw_cost = sum(float(r[2] or 0) for r in raw_rows)
    by_feature = {g["feature"]: g for g in outs["30 d by feature, value units"]["groups"]}
    feature_ok = all(int(r[1]) == by_feature[r[0]]["requests"]
                     and abs(float(r[2] or 0) - by_feature[r[0]]["cost_usd"])
                     <= 1e-6 * max(1.0, float(r[2] or 0)) for r in raw_rows)
    res.checks.append(
        f"30-day summary: {total['requests']:,} requests ({res.traces:,} traces stored, "
        f"{raw_n:,} by the raw scan), cost ${total['cost_usd']:,.2f} (raw ${raw_cost:,.2f}); "
        f"per-feature requests and cost equal to the raw scan: "
        f"{'yes' if feature_ok and total['requests'] == raw_n == res.traces else 'NO'}")
    lat = total["latency_ms"]
    ttft = total["ttft_ms"]
    res.checks.append(
        f"30-day overall: availability {total['availability']:.2%}, latency p50/p95/p99 "
        f"{lat['p50']:,.0f}/{lat['p95']:,.0f}/{lat['p99']:,.0f} ms, TTFT p50/p95 "
        f"{ttft['p50']:,.0f}/{ttft['p95']:,.0f} ms, errors "
        + ", ".join(f"{k} {v:,}" for k, v in total["errors_by_type"].items()))
    res.measure_s = time.perf_counter() - t0


async def facts_of(store: Store, res: Result, sqlite_path: Path | None) -> None:
    async with store.connect() as conn:
        for table in ("rollups", "rollup_sketches", "rollup_errors", "rollup_outcomes"):
            rows = (await conn.exec_driver_sql(
                f"SELECT granularity, count(*) FROM {table} GROUP BY granularity")).all()
            res.rollup_rows[table] = {str(g): int(n) for g, n in rows}
        if res.dialect == "postgresql":
            res.db_bytes = int((await conn.exec_driver_sql(
                "SELECT pg_database_size(current_database())")).scalar_one())
            res.server = str((await conn.exec_driver_sql("SHOW server_version")).scalar_one())
            for k in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit",
                      "random_page_cost"):
                res.settings[k] = str((await conn.exec_driver_sql(f"SHOW {k}")).scalar_one())
        else:
            res.server = str((await conn.exec_driver_sql(
                "SELECT sqlite_version()")).scalar_one())
            for k in ("journal_mode", "synchronous", "cache_size", "page_size"):
                res.settings[k] = str((await conn.exec_driver_sql(
                    f"PRAGMA {k}")).scalar_one())
    if sqlite_path is not None:
        res.db_bytes = sum(p.stat().st_size for p in sqlite_path.parent.glob(
            sqlite_path.name + "*"))


async def run_store(res: Result, args: argparse.Namespace, start: float, end: float,
                    sqlite_path: Path | None) -> None:
    store = Store(res.url)
    try:
        await store.upgrade()
        log(f"{res.dialect}: generating {args.traces:,} traces into {res.url}")
        await generate(store, res, args, start, end)
        log(f"{res.dialect}: {res.traces:,} traces in {res.gen_s:.0f} s "
            f"({res.traces / res.gen_s:,.0f}/s; insert_rows {res.insert_s:.0f} s)")
        if res.dialect == "postgresql":
            # What autovacuum does on its own shortly after a bulk load; done here so that
            # the timed calls neither run without planner statistics nor race autovacuum.
            a = time.perf_counter()
            conn = await asyncpg.connect(res.url)
            try:
                await conn.execute("VACUUM (ANALYZE)")
            finally:
                await conn.close()
            res.prep_s = time.perf_counter() - a
            res.prep_note = f"`VACUUM (ANALYZE)` after the load ({res.prep_s:.0f} s)"
        else:
            res.prep_note = "none (keel does not run ANALYZE on SQLite; no sqlite_stat1)"
        await facts_of(store, res, sqlite_path)
        await measure(store, res, args, end)
    finally:
        await store.aclose()


async def create_pg(base: str, name: str) -> None:
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_pg(base: str, name: str) -> None:
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# --- RESULTS.md -------------------------------------------------------------------------------






def ms(v: float) -> str:
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def section(results: list[Result], m: dict[str, str], args: argparse.Namespace, command: str,
            load_after: str, total_s: float) -> str:
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    L = [START, f"## Summary query over {args.traces:,} stored traces\n",
         "_Generated by `bench/summary.py`; the gateway bench (`bench/run.py`) keeps this "
         "section when it rewrites the file._\n",
         f"Command: `{command}` · {m['date']} · {m['cpu']}, {m['cores']} cores · kernel "
         f"{m['kernel']} · Python {m['python']} · keel {m['keel']} · load average before "
         f"{m['load']}, after {load_after} · whole run {total_s / 60:.1f} min\n"]
    L.append(f"Target: the summary for a 30-day window returns in under "
             f"{TARGET_MS:.0f} ms over {args.traces:,} stored traces, on SQLite and "
             "PostgreSQL (checked on the median of the warm calls; the p95 is shown too).\n")
    L.append("| check | result | |")
    L.append("|---|---|---|")
    for r in results:
        t = r.timing("30 d overall")
        worst = max((x for x in r.timings if x.window.startswith("30 d, day")),
                    key=lambda x: x.median)
        ok = t is not None and t.median < TARGET_MS
        L.append(f"| {names[r.dialect]}: 30-day summary (overall) median < {TARGET_MS:.0f} ms "
                 f"| **{'PASS' if ok else 'FAIL'}** | median {ms(t.median) if t else '-'} ms, "
                 f"p95 {ms(t.p95) if t else '-'} ms; slowest 30-day variant "
                 f"({worst.name}): median {ms(worst.median)} ms, p95 {ms(worst.p95)} ms |")
    L.append("")
    L.append(f"Warm calls of `keel.monitor.measures.summary()`: one untimed call, then "
             f"{args.repeat} timed ones (the raw scan: {args.raw_repeat}); median and p95 in "
             "ms. *groups* = groups in the answer.\n")
    head = "| call | window | groups |"
    sep = "|---|---|---:|"
    for r in results:
        head += f" {names[r.dialect]} median | p95 |"
        sep += "---:|---:|"
    L += [head, sep]
    for i, t0 in enumerate(results[0].timings):
        line = f"| {t0.name} | {t0.window} | {t0.groups} |"
        for r in results:
            t = r.timings[i]
            bold = "**" if t.name == "30 d overall" else ""
            line += f" {bold}{ms(t.median)}{bold} | {ms(t.p95)} |"
        L.append(line)
    L.append("")
    for r in results:
        overall = r.timing("30 d overall")
        raw = r.timing("raw traces, GROUP BY feature")
        if overall and raw:
            x = raw.median / overall.median
            xs = f"{x:,.0f}" if x >= 10 else f"{x:.1f}"
            L.append(f"- {names[r.dialect]}: the raw scan takes **{xs}x** the 30-day "
                     f"summary ({ms(raw.median)} vs {ms(overall.median)} ms) and "
                     "gives only counts and sums (no percentiles, errors by type, feedback or "
                     "value units).")
    L.append("")
    L.append("Where the time goes: the median time of each SQL statement over the same timed "
             "calls (execute + fetch of every row, which the async adapters do together), "
             "and the rest of the call (median call minus those: taking a pooled connection, "
             "building and compiling the queries, merging the sketches, the measures), in "
             "ms; *sketch rows* = rows of "
             "`rollup_sketches` the call's WHERE selects:\n")
    tables = ("rollups", "rollup_sketches", "rollup_errors", "rollup_outcomes")
    head = "| call | sketch rows |"
    sep = "|---|---:|"
    for r in results:
        head += (f" {names[r.dialect]}: rollups / sketches / errors / outcomes | "
                 "rest |")
        sep += "---:|---:|"
    L += [head, sep]
    for i, t0 in enumerate(results[0].timings[:-1]):
        line = f"| {t0.name} | {t0.sketch_rows or 0:,} |"
        for r in results:
            t = r.timings[i]
            line += (" " + " / ".join(ms(t.per_table[k]) if k in t.per_table else "-"
                                      for k in tables) + f" | {ms(t.python_ms)} |")
        L.append(line)
    L.append("")
    L.append("The data and how long it took to write it:\n")
    L.append("| | " + " | ".join(names[r.dialect] for r in results) + " |")
    L.append("|---|" + "---:|" * len(results))

    def row(label: str, f: Callable[[Result], str]) -> None:
        L.append(f"| {label} | " + " | ".join(f(r) for r in results) + " |")

    row("traces (with a payload)", lambda r: f"{r.traces:,} ({r.payloads:,})")
    row("outcomes (value units)", lambda r: f"{r.outcomes:,}")
    row("generation, whole (build traces + `insert_rows` + outcomes)",
        lambda r: f"{r.gen_s:,.0f} s = **{r.traces / r.gen_s:,.0f} traces/s**")
    row("of which in `insert_rows` (traces + rollups, one transaction per batch)",
        lambda r: f"{r.insert_s:,.0f} s = {r.traces / r.insert_s:,.0f} traces/s")
    row("of which storing the outcomes", lambda r: f"{r.outcome_s:,.1f} s")
    row("before timing", lambda r: r.prep_note)
    row("timing (all calls, plans)", lambda r: f"{r.measure_s:,.0f} s")
    for table in ("rollups", "rollup_sketches", "rollup_errors", "rollup_outcomes"):
        row(f"`{table}` rows, minute / hour / day",
            lambda r, t=table: " / ".join(f"{r.rollup_rows.get(t, {}).get(g, 0):,}"
                                          for g in "mhd"))
    row("database size", lambda r: f"{r.db_bytes / 2**20:,.0f} MiB")
    row("server", lambda r: r.server)
    row("settings", lambda r: ", ".join(f"{k} {v}" for k, v in r.settings.items()))
    L.append("")
    for r in results:
        for c in r.checks:
            L.append(f"- {names[r.dialect]}: {c}")
    L.append("")
    L.append(
        "Method: one process, one store at a time, not pinned, on a machine shared with other "
        f"work (see the load averages; {m['cores']} cores, PostgreSQL on the same machine). "
        f"The data: {args.traces:,} traces with start times drawn over the 30 days before "
        "the run (busy UTC office hours, quiet nights, weekends at 45%, +30% over the month), "
        "6 features, 4 teams, 5 models (OpenAI, Anthropic and Gemini prices, with "
        "prompt-cache reads), 4 prompts whose versions change during the month (2-day canary "
        "ramps), ~2% errors of 5 types, ~2% keel cache hits, lognormal token counts, latency "
        "= TTFT + tokens * per-token time (lognormal; 1% slow outliers), TTFT on the "
        "streamed half; seeded (`--seed`), so both stores get the same traces. They are "
        f"written in time order through `insert_rows` in batches of {args.batch} (the trace "
        "writer's batch size): traces and rollups (minute, hour and day buckets; counters, "
        "errors by type, latency/TTFT sketches) in one transaction per batch, as the trace "
        "writer does; the outcomes per batch in their own transaction (rows + rollups, as "
        "`insert_outcome` does). The timed calls run after the load, warm, through the same "
        "`Store` (SQLite: WAL, the keel pragmas; PostgreSQL: asyncpg pool, the server's "
        "defaults). Each call is timed with `time.perf_counter()` around the awaited "
        "`summary()`: its 3 or 4 SQL statements (counters, sketches, errors; outcomes when "
        "value units apply), the fetch, and the Python that merges the sketches and computes "
        "the measures. The window is the one the API would use for “the last 30 days” "
        "(aligned to whole days: 31 day buckets). The raw scan is one `SELECT feature, "
        "count(*), sum(cost_usd), …, sum(latency_ms) FROM traces WHERE start_time in the "
        "window GROUP BY feature` through the same store.")
    L.append("")
    for r in results:
        for t in r.timings:
            if not t.plans:
                continue
            how = ("EXPLAIN QUERY PLAN" if r.dialect == "sqlite"
                   else "EXPLAIN (ANALYZE, BUFFERS)")
            L.append(f"<details><summary>{names[r.dialect]}: plans of “{t.name}” ({how})"
                     "</summary>\n")
            for table, sql, plan in t.plans:
                L.append(f"`{table}`:\n\n```\n{sql}\n--\n{plan}\n```\n")
            L.append("</details>\n")
    L.append(END)
    return "\n".join(L) + "\n"




# --- main -------------------------------------------------------------------------------------


def remove_sqlite(path: Path) -> None:
    for p in path.parent.glob(path.name + "*"):  # the file, -wal, -shm
        p.unlink()


async def main_async(args: argparse.Namespace) -> list[Result]:
    end = time.time()
    start = end - 30 * DAY
    WORK.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="keel-summary-", dir=WORK))
    results: list[Result] = []
    ok = False
    try:
        for dialect in args.dialects.split(","):
            if dialect == "sqlite":
                path = tmp / "keel.db"
                res = Result("sqlite", f"sqlite:///{path}")
                results.append(res)
                await run_store(res, args, start, end, path)
                if not args.keep:
                    remove_sqlite(path)
            elif dialect == "postgresql":
                name = f"keel_bench_summary_{secrets.token_hex(4)}"
                await create_pg(args.pg, name)
                res = Result("postgresql", f"{args.pg}/{name}")
                results.append(res)
                try:
                    await run_store(res, args, start, end, None)
                finally:
                    if args.keep:
                        log(f"kept the PostgreSQL database {name}")
                    else:
                        await drop_pg(args.pg, name)
            else:
                sys.exit(f"unknown dialect {dialect!r}; use sqlite,postgresql")
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=1_000_000, help="traces to store [1000000]")
    ap.add_argument("--dialects", default="sqlite,postgresql",
                    help="stores to run, in order [sqlite,postgresql]")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                    help="PostgreSQL server (no database name): a database "
                         "keel_bench_summary_<random> is created there from `postgres`")
    ap.add_argument("--batch", type=int, default=500, help="traces per insert_rows [500]")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per summary [20]")
    ap.add_argument("--raw-repeat", type=int, default=5, help="timed raw scans [5]")
    ap.add_argument("--payload-share", type=float, default=0.01,
                    help="share of traces with a tiny payload [0.01]")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave --output alone")
    ap.add_argument("--keep", action="store_true",
                    help="keep the SQLite file and the PostgreSQL database")
    args = ap.parse_args()
    if args.traces < 1000 or args.repeat < 1 or args.raw_repeat < 1 or args.batch < 1:
        sys.exit("--traces must be at least 1000; --repeat, --raw-repeat, --batch at least 1")
    m = machine()
    command = "python bench/summary.py" + "".join(f" {a}" for a in sys.argv[1:])
    log(f"load average {m['load']}")
    t0 = time.perf_counter()
    results = asyncio.run(main_async(args))
    total = time.perf_counter() - t0
    log(f"done in {total / 60:.1f} min")
    text = section(results, m, args, command, loadavg(), total)
    print()
    print(text)
    if not args.no_write:
        write_section(Path(args.output), text, START, END)
        log(f"wrote the summary section of {args.output}")


if __name__ == "__main__":
    main()
