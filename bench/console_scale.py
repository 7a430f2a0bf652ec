"""Console at scale: every console page's server time over 10,000,000 stored traces, on
SQLite and on PostgreSQL.

    .venv/bin/python bench/console_scale.py                       # 10M traces, both stores
    .venv/bin/python bench/console_scale.py --traces 200000 --store both   # a quick check
    .venv/bin/python bench/console_scale.py --store sqlite --reuse         # time again only

What it does, per store (one at a time):

* **Data** (skipped with ``--reuse``): a fresh store (a SQLite file in
  bench/.work/console-scale/sqlite/, or the PostgreSQL database ``keel_bench_console``,
  dropped and created through the server's ``postgres`` database), ``upgrade()``, then
  gateway keys (one per team and feature) and role keys through ``keel.keys.service``, 40
  prompts x 5 versions through ``keel.prompts.PromptRegistry``, and N traces over the 30
  days before the load (bench/console_traffic.py: 20 features, 50 teams, 10 models, the
  prompts' versions released during the month with 2-day canary ramps, daily and weekly
  seasonality with growth, ~2% errors of a few types and a 3-hour provider incident,
  lognormal latency and tokens, real-looking prices, guard findings and blocks on the
  guarded features, retries and fallbacks with their attempt log, keel cache hits, users
  and sessions). Seeded, with one window for all the stores of a run: the same traces on
  each. Trace ids have the shape of keel's own (``keel.types.new_trace_id``: the start
  time's 48-bit ms clock, then 80 random bits), so they sort by start time. The traces are
  built in a second process (``keel.store.traces.trace_values`` of a ``keel.types.Trace``,
  as the trace writer builds its rows) and written in time order through
  ``keel.store.traces.insert_rows`` in batches (``--batch``, default 5,000), which
  maintains the rollups in the same transaction; feedback (~1.5% of the answers) and
  business outcomes go with each batch, with their rollups, as ``keel.store.feedback``
  stores them. 1% of the traces carry a small request/response payload
  (``--payload-share``), to keep the size sane. Then datasets built from traces, eval runs
  with results, and answers held for review (``keel.review.ReviewService``, most of them
  decided). PostgreSQL gets ``VACUUM (ANALYZE)`` after the load (what autovacuum does soon
  after); SQLite nothing.
* **Serving**: ``keel serve`` as a child process on that store (``KEEL_MASTER_KEY`` set, a
  config naming the models, prices, features, routes, policies and budgets), logged into
  as a browser does (``GET /login`` for the form token and its cookie, ``POST /login``
  with the admin key and an ``Origin``).
* **Timed**: every ``GET`` page of ``keel.console.routes.console_routes(state)``, so
  pages added later are timed too; path parameters get real values (a trace id, a prompt
  name, an eval run id, a review id, ...), a page whose parameter has no value is skipped
  and reported. The pages in the navigation are timed for the default filter and for
  one feature, one team, range=30d and range=24h (the trace list also for status=error
  and its second page), the others as linked. Each variant: ``--warmup`` untimed
  requests, then ``--repeat`` timed ones (fewer, but at least 5, once they have taken
  ``--cap`` seconds), one at a time, on one keep-alive connection from this process
  (wall time from the request written to the body read, on loopback); p50/p95/max.
* **Where the time goes**: the same pages once more on keel's app in this process,
  with every SQL statement's time recorded (the median of 3 requests); for a page over
  its budget the slowest statement is named, with the rows its WHERE selects (SQLite) and
  its plan (``EXPLAIN QUERY PLAN``; PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``).
* **Report**: a table on stdout, and the section between ``<!-- console:start -->`` and
  ``<!-- console:end -->`` of bench/RESULTS.md (replaced, or appended), built from the
  last result of each store (bench/.work/console-scale/results-<store>.json), so one
  store can be re-run alone.

The databases are dropped at the end unless ``--keep`` (needed for a later ``--reuse``);
``--clean`` drops kept ones. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
import yaml
from common import loadavg, log, machine, write_section
from console_traffic import (
    CANARY_DAYS,
    FALLBACK,
    MODEL,
    MODELS,
    TEAMS,
    VERSIONS,
    Feature,
    Prompt,
    World,
    lognormal,
    produce,
    version_at,
)
from sqlalchemy import event
from starlette.routing import Route

from keel.audit import AuditLog
from keel.config import Settings, parse_config
from keel.console.pages import collect as collect_pages
from keel.console.routes import console_routes
from keel.evals.datasets import Datasets
from keel.keys.service import create_key
from keel.prompts import PromptRegistry
from keel.prompts.spec import PromptSpec
from keel.review import ReviewService
from keel.server.app import create_app
from keel.server.state import AppState
from keel.store import Store
from keel.store import evals as eval_store
from keel.store.rollups import Deltas, apply
from keel.store.schema import feedback as feedback_table
from keel.store.schema import outcomes as outcomes_table
from keel.store.traces import insert_rows

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work" / "console-scale"
START, END = "<!-- console:start -->", "<!-- console:end -->"
DAY = 86400.0
HOUR = 3600.0
PG_NAME = "keel_bench_console"
MASTER_KEY = "sk-keel-bench-console-admin"
PAGE_BUDGET_MS = 300.0
FAST_BUDGET_MS = 100.0  # the trace list and a trace's page
FAST_PAGES = ("/traces", "/traces/{trace_id}")
STORES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

# --- loading ----------------------------------------------------------------------------------


@dataclass
class Loaded:
    """What a load stored, how long it took, and the values the pages are opened with."""

    store: str
    url: str
    traces: int = 0
    seed: int = 0
    start: float = 0.0
    end: float = 0.0
    batch: int = 0
    payload_share: float = 0.0
    payloads: int = 0
    feedback: int = 0
    outcomes: int = 0
    keys: int = 0
    prompt_versions: int = 0
    datasets: int = 0
    eval_runs: int = 0
    eval_results: int = 0
    reviews: int = 0
    reviews_pending: int = 0
    setup_s: float = 0.0  # keys and prompts
    traces_s: float = 0.0  # the whole trace load, end to end
    insert_s: float = 0.0  # inside insert_rows
    extra_s: float = 0.0  # feedback and outcomes with their rollups
    build_s: float = 0.0  # building the rows, in the generating process
    after_s: float = 0.0  # datasets, eval runs, reviews
    prep_s: float = 0.0  # VACUUM (ANALYZE)
    prep_note: str = ""
    loaded_at: str = ""
    db_bytes: int = 0
    table_rows: dict[str, int] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)  # path parameter values

    @property
    def rate(self) -> float:
        return self.traces / self.traces_s if self.traces_s else 0.0


def settings_for(loaded: Loaded, data_dir: Path, config_path: Path) -> Any:
    return Settings(config=str(config_path), data_dir=str(data_dir),
                    database_url=loaded.url, master_key=MASTER_KEY)


async def setup(store: Any, settings: Any, world: World, loaded: Loaded, end: float) -> None:
    """Keys (a gateway key per team and feature, role keys) and the prompts' versions, with
    their labels, through keel's own services (each recorded in the audit log)."""
    audit = AuditLog.from_settings(store, settings)
    for team, feature in world.pairs():
        _, rec = await create_key(store, team=team, feature=feature, name=f"{team} {feature}",
                                  actor="admin", audit=audit)
        world.keys[(team, feature)] = rec["id"]
        loaded.keys += 1
    for role in ("viewer", "operator", "reviewer", "auditor"):
        _, rec = await create_key(store, team=TEAMS[0], role=role, name=f"{role} (org)",
                                  org_wide=True, actor="admin", audit=audit)
        loaded.keys += 1
    loaded.values["key_id"] = rec["id"]
    registry = PromptRegistry(store, audit=audit)
    start = end - 30 * DAY
    for f in world.features:
        model = f.models[0][0]
        for p in f.prompts:
            for v in range(1, VERSIONS + 1):
                spec = PromptSpec.parse({
                    "name": p.name, "model": model, "params": {"temperature": 0.2},
                    "description": f"{f.name}: {p.name.rsplit('-', 1)[1]} prompt",
                    "messages": [
                        {"role": "system", "content": f"You are the {f.name} assistant "
                                                      f"(revision {v}). Be brief."},
                        {"role": "user", "content": "{{question}}"}]})
                await registry.push(spec, message=f"revision {v}", author="admin")
                loaded.prompt_versions += 1
            live = [i + 1 for i, at in enumerate(p.releases)
                    if start + (at + CANARY_DAYS) * DAY <= end]
            await registry.set_label(f"{p.name}@{live[-1]}", "production", actor="admin")
            await registry.set_label(f"{p.name}@{VERSIONS}", "staging", actor="admin")
    loaded.values["prompt"] = world.features[0].prompts[0].name


async def load_traces(store: Any, world: World, loaded: Loaded) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    """The traces, from the generating process, through insert_rows; feedback and outcomes
    with each batch. Returns the answers to hold for review and the sample traces."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue(maxsize=6)
    spec = {"seed": loaded.seed, "start": loaded.start, "end": loaded.end,
            "traces": loaded.traces, "batch": loaded.batch,
            "payload_share": loaded.payload_share,
            "keys": {f"{t}\t{f}": k for (t, f), k in world.keys.items()}}
    proc = ctx.Process(target=produce, args=(queue, spec), daemon=True)
    proc.start()
    held: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    stored = 0
    step = max(loaded.batch, loaded.traces // 20)
    next_report = step
    t0 = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        while True:
            batch = await loop.run_in_executor(None, queue.get)
            if batch is None:
                break
            a = time.perf_counter()
            await insert_rows(store, batch.rows, batch.payloads)
            b = time.perf_counter()
            if batch.feedback or batch.outcomes:
                d = Deltas()
                for row in batch.feedback:
                    d.add_feedback(row)
                for row in batch.outcomes:
                    d.add_outcome(row)
                async with store.begin() as conn:  # as keel.store.feedback does, per batch
                    if batch.feedback:
                        await conn.execute(feedback_table.insert(), batch.feedback)
                    if batch.outcomes:
                        await conn.execute(outcomes_table.insert(), batch.outcomes)
                    await apply(conn, store, d)
            loaded.insert_s += b - a
            loaded.extra_s += time.perf_counter() - b
            loaded.build_s += batch.built_s
            stored += len(batch.rows)
            loaded.payloads += len(batch.payloads)
            loaded.feedback += len(batch.feedback)
            loaded.outcomes += len(batch.outcomes)
            held += batch.held
            samples += batch.samples
            if stored >= next_report:
                el = time.perf_counter() - t0
                log(f"  {loaded.store}: {stored:,} traces in {el:.0f} s ({stored / el:,.0f}/s "
                    f"end to end; {stored / loaded.insert_s:,.0f}/s in insert_rows)")
                next_report += step
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
    if stored != loaded.traces:
        raise RuntimeError(f"stored {stored:,} traces, expected {loaded.traces:,}")
    loaded.traces_s = time.perf_counter() - t0
    return held, samples


async def after(store: Any, settings: Any, world: World, loaded: Loaded,
                held: list[dict[str, Any]], samples: list[dict[str, Any]]) -> None:
    """Datasets built from stored traces, eval runs with their results, and answers held
    for review (most of them decided), each through keel's own code."""
    rng = random.Random(loaded.seed + 7)
    by_feature: dict[str, list[str]] = {}
    for s in samples:
        by_feature.setdefault(s["feature"], []).append(s["id"])
    datasets = Datasets(store)
    dataset_of: dict[str, tuple[str, int]] = {}
    for f in world.features:
        ids = by_feature.get(f.name, [])[:40]
        if ids:
            name = f"{f.name}-golden"
            version, _ = await datasets.add_trace_ids(name, ids, message="from production")
            dataset_of[f.name] = (name, version)
            loaded.datasets += 1
    if samples:
        loaded.values["trace_id"] = samples[-1]["id"]
        loaded.values["dataset"] = next(iter(dataset_of.values()))[0]
    # eval runs: a candidate and its baseline before every release, and a daily run of the
    # production version of the top features' answer prompts
    runs: list[tuple[Prompt, Feature, int, float, str, str]] = []
    for f in world.features:
        for p in f.prompts:
            for i, at in enumerate(p.releases[1:], start=2):
                when = loaded.start + at * DAY - HOUR
                group = f"{rng.getrandbits(64):016x}"
                runs.append((p, f, i, when, "candidate", group))
                runs.append((p, f, i - 1, when, "baseline", group))
    for f in world.features[:8]:
        p = f.prompts[0]
        for day in range(30):
            when = loaded.start + day * DAY + 3 * HOUR
            runs.append((p, f, version_at(p, day + 0.125, rng), when, "", ""))
    last_run = ""
    for p, f, version, when, role, group in sorted(runs, key=lambda r: r[3]):
        run_id = f"{int(when * 1000):012x}{rng.getrandbits(80):020x}"
        ds = dataset_of.get(f.name, (f"{f.name}-golden", 1))
        cases = 40
        await eval_store.create_run(store, {
            "id": run_id, "suite": f"{p.name}-quality", "group_id": group or run_id,
            "role": role or None, "target": f"{p.name}@{version}", "prompt_name": p.name,
            "prompt_version": version, "model": f.models[0][0], "dataset_name": ds[0],
            "dataset_version": ds[1], "config": json.dumps({"scorers": ["contains", "judge"],
                                                             "repeats": 1}),
            "git_commit": f"{rng.getrandbits(40):010x}", "status": "running",
            "started_at": when, "cases": cases})
        quality = 0.78 + 0.03 * version + rng.uniform(-0.04, 0.04)
        rows = []
        for c in range(cases):
            ok = rng.random() < quality
            lat = lognormal(rng, 900, 0.4)
            rows.append({"run_id": run_id, "case_idx": c, "repeat": 0, "case_id": f"case-{c}",
                         "status": "passed" if ok else "failed", "output": "It ships tomorrow.",
                         "scores": json.dumps([{"name": "contains", "value": 1.0 if ok else 0.0,
                                                "passed": ok}]),
                         "error": None, "latency_ms": lat, "cost_usd": 0.0004,
                         "input_tokens": 600, "output_tokens": 40, "cached": False,
                         "trace_id": None})
        await eval_store.add_results(store, rows)
        passed = sum(r["status"] == "passed" for r in rows)
        lats = sorted(r["latency_ms"] for r in rows)
        await eval_store.finish_run(store, run_id, {
            "status": "done", "finished_at": when + 95, "executions": cases, "passed": passed,
            "failed": cases - passed, "errored": 0, "cached": 0, "cost_usd": 0.0004 * cases,
            "input_tokens": 600 * cases, "output_tokens": 40 * cases,
            "latency_p50_ms": lats[cases // 2], "latency_p95_ms": lats[int(cases * 0.95)],
            "latency_p99_ms": lats[-1],
            "summary": json.dumps({"pass_rate": passed / cases, "error_rate": 0.0,
                                   "cases": cases, "scorers": {}, "errors": [],
                                   "thresholds": {"ok": passed / cases >= 0.8,
                                                  "judgeable": True, "failures": []}})})
        loaded.eval_runs += 1
        loaded.eval_results += cases
        last_run = run_id
        if role:
            loaded.values[f"{role}_run"] = run_id
    loaded.values["run_id"] = last_run
    loaded.values["suite"] = f"{world.features[0].prompts[0].name}-quality"
    # reviews, on the clock of the traces they hold
    now = [0.0]
    service = ReviewService(store, AuditLog.from_settings(store, settings),
                            clock=lambda: now[0])
    pending = ""
    for h in held:
        now[0] = h["start_time"] + 2.0
        review = await service.hold(
            trace_id=h["trace_id"], key_id=h["key_id"], team=h["team"], feature=h["feature"],
            policy=f"{h['feature']}-guard", policy_version=h["policy_version"],
            reasons=[{"rule": "review", "why": "every answer of this feature is reviewed"}],
            mode="async", timeout_s=7 * DAY,
            request={"model": h["model"], "messages": [{"role": "user",
                                                        "content": "Summarise clause 7."}]},
            completion={"id": "chatcmpl-bench", "object": "chat.completion",
                        "model": h["model"], "choices": [{
                            "index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant",
                                        "content": "Clause 7 limits liability to fees paid."}}]})
        loaded.reviews += 1
        if h["start_time"] > loaded.end - 3 * DAY:
            loaded.reviews_pending += 1
            pending = review.id
            continue
        now[0] = h["start_time"] + rng.uniform(600, 8 * HOUR)
        x = rng.random()
        decision = "approve" if x < 0.8 else "edit" if x < 0.9 else "reject"
        await service.decide(review.id, decision=decision, reviewer="reviewer@legal",
                             reason="not supported by the contract" if decision == "reject"
                             else None,
                             content="Clause 7 caps liability at twelve months of fees."
                             if decision == "edit" else None)
        if not pending:
            pending = review.id
    if pending:
        loaded.values["review_id"] = pending


async def facts(store: Any, loaded: Loaded, sqlite_path: Path | None) -> None:
    tables = ("traces", "trace_payloads", "rollups", "rollup_sketches",
              "rollup_prompt_sketches", "rollup_errors", "feedback", "outcomes", "reviews",
              "eval_runs", "audit_entries")
    async with store.connect() as conn:
        for t in tables:
            loaded.table_rows[t] = int((await conn.exec_driver_sql(
                f"SELECT count(*) FROM {t}")).scalar_one())
        if loaded.store == "postgres":
            loaded.db_bytes = int((await conn.exec_driver_sql(
                "SELECT pg_database_size(current_database())")).scalar_one())
    if sqlite_path is not None:
        loaded.db_bytes = sum(p.stat().st_size for p in sqlite_path.parent.glob(
            sqlite_path.name + "*"))


async def load_store(loaded: Loaded, settings: Any, sqlite_path: Path | None) -> None:
    world = World(loaded.seed)
    store = Store(loaded.url)
    logging.getLogger("keel.audit").setLevel(logging.ERROR)  # a line per checkpoint
    try:
        await store.upgrade()
        a = time.perf_counter()
        await setup(store, settings, world, loaded, loaded.end)
        loaded.setup_s = time.perf_counter() - a
        log(f"{loaded.store}: {loaded.keys} keys, {loaded.prompt_versions} prompt versions in "
            f"{loaded.setup_s:.0f} s; loading {loaded.traces:,} traces")
        held, samples = await load_traces(store, world, loaded)
        log(f"{loaded.store}: {loaded.traces:,} traces in {loaded.traces_s:.0f} s "
            f"({loaded.rate:,.0f}/s; insert_rows {loaded.insert_s:.0f} s)")
        a = time.perf_counter()
        await after(store, settings, world, loaded, held, samples)
        loaded.after_s = time.perf_counter() - a
        log(f"{loaded.store}: {loaded.datasets} datasets, {loaded.eval_runs} eval runs, "
            f"{loaded.reviews} reviews in {loaded.after_s:.0f} s")
        if loaded.store == "postgres":
            a = time.perf_counter()
            conn = await asyncpg.connect(loaded.url)
            try:
                await conn.execute("VACUUM (ANALYZE)")
            finally:
                await conn.close()
            loaded.prep_s = time.perf_counter() - a
            loaded.prep_note = f"`VACUUM (ANALYZE)` after the load ({loaded.prep_s:.0f} s)"
        else:
            loaded.prep_note = "none (keel does not run ANALYZE on SQLite)"
        await facts(store, loaded, sqlite_path)
    finally:
        await store.aclose()
    loaded.values["feature"] = world.features[0].name
    loaded.values["team"] = world.features[0].teams[0][0]


# --- serving ----------------------------------------------------------------------------------


def keel_config(world: World) -> dict[str, Any]:
    """The config keel serves the store with: what a company with this traffic declares."""
    providers = sorted({m.provider for m in MODELS})
    cfg: dict[str, Any] = {
        "providers": [{"name": p, "kind": "mock"} for p in providers],
        "models": [{"name": m.name, "provider": m.provider,
                    "price": {"input_per_mtok": m.input_per_mtok,
                              "output_per_mtok": m.output_per_mtok,
                              "cached_input_per_mtok": m.cached_per_mtok}} for m in MODELS],
        "routes": [], "policies": [], "features": [],
        "budgets": [{"scope": "team", "name": TEAMS[0], "usd": 20000.0, "period": "monthly"},
                    {"scope": "feature", "name": world.features[1].name, "usd": 5000.0,
                     "period": "weekly"}],
    }
    for f in world.features:
        cfg["features"].append({"name": f.name, **({"value_unit": f.value_unit}
                                                    if f.value_unit else {})})
        primary = MODEL[f.models[0][0]]
        if f.routed:
            cfg["routes"].append({"name": f.name, "features": [f.name],
                                  "targets": [{"model": primary.name}],
                                  "fallbacks": [FALLBACK[primary.provider]]})
        if f.guarded:
            policy: dict[str, Any] = {
                "name": f"{f.name}-guard", "features": [f.name],
                "input": [{"scanner": "injection", "action": "block", "threshold": 0.8},
                          {"scanner": "pii", "action": "redact"}]}
            if f.review:
                policy["review"] = {"when": True, "mode": "async", "timeout_s": 7 * DAY}
            cfg["policies"].append(policy)
    return cfg


def write_config(world: World, path: Path) -> None:
    cfg = keel_config(world)
    parse_config(cfg, str(path))  # refused here, with keel's own message, if it is wrong
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KeelServe:
    """``keel serve`` as a child process on the bench's store."""

    def __init__(self, settings: Any, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "KEEL_CONFIG": settings.config, "KEEL_DATA_DIR": settings.data_dir,
               "KEEL_DATABASE_URL": settings.database_url, "KEEL_MASTER_KEY": MASTER_KEY,
               "KEEL_LOG_LEVEL": "warning"}
        self.log = log_path.open("ab")
        keel = Path(sys.executable).with_name("keel")
        self.proc = subprocess.Popen(
            [str(keel), "serve", "--config", settings.config, "--port", str(self.port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started_s = 0.0

    def wait_ready(self, timeout_s: float = 600.0) -> None:
        a = time.perf_counter()
        while time.perf_counter() - a < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keel serve exited with {self.proc.returncode}; see "
                                   f"{self.log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    self.started_s = time.perf_counter() - a
                    return
            time.sleep(0.2)
        raise RuntimeError(f"keel serve did not answer /health in {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class InProcess:
    """keel's app in this process (uvicorn in a thread), with every SQL statement's time
    recorded: where a page spends its time."""

    def __init__(self, settings: Any, cfg: Any) -> None:
        self.state = AppState.build(settings, cfg)
        self.statements: list[tuple[str, Any, float]] = []
        self._t = 0.0
        engine = self.state.store.engine.sync_engine

        def before(*a: Any) -> None:
            self._t = time.perf_counter()

        def after(_c: Any, _cur: Any, sql: str, params: Any, *_: Any) -> None:
            self.statements.append((sql, params, (time.perf_counter() - self._t) * 1000))

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(settings, cfg, state=self.state), lifespan="on",
                                log_level="warning", access_log=False, loop="asyncio")
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> InProcess:
        self.thread.start()
        deadline = time.monotonic() + 600
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("keel's app did not start in this process")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()


def login(base: str) -> Any:
    """A browser's session: the login form's token and cookie, then the admin key."""
    client = httpx.Client(base_url=base, timeout=120, follow_redirects=False)
    form = client.get("/login")
    m = re.search(r'name="token" value="([^"]+)"', form.text)
    if form.status_code != 200 or not m:
        raise RuntimeError(f"GET /login answered {form.status_code} without a form token")
    r = client.post("/login", data={"token": m.group(1), "key": MASTER_KEY, "next": "/"},
                    headers={"origin": base})
    if r.status_code != 303 or r.headers.get("location") != "/":
        raise RuntimeError(f"POST /login answered {r.status_code}: {r.text[:300]}")
    return client


# --- the pages --------------------------------------------------------------------------------


def console_paths(settings: Any, cfg: Any) -> tuple[list[str], set[str]]:
    """The paths of every GET page of the console keel serves, and those of them in its
    navigation (the pages the shared filter is for)."""
    state = AppState.build(settings, cfg)
    try:
        routes = console_routes(state)
    finally:
        asyncio.run(state.store.aclose())
    paths = [r.path for r in routes if isinstance(r, Route) and "GET" in (r.methods or ())
             and r.path not in ("/login", "/favicon.ico")]
    nav = {p.path for p in collect_pages()[0] if p.nav}
    return paths, nav


# A path parameter's value: by "<first path segment>:<name>", then by name alone.
PARAMS = {
    "traces:id": "trace_id", "trace_id": "trace_id", "reviews:id": "review_id",
    "review_id": "review_id", "evals:id": "run_id", "runs:id": "run_id", "run_id": "run_id",
    "eval_id": "run_id", "prompts:name": "prompt", "prompt": "prompt", "prompt_name": "prompt",
    "datasets:name": "dataset", "dataset": "dataset", "dataset_name": "dataset",
    "keys:id": "key_id", "key_id": "key_id", "feature": "feature", "features:name": "feature",
    "team": "team", "teams:name": "team", "suite": "suite", "governance:name": "policy",
    "policies:name": "policy", "policy": "policy", "governance:version": "policy_version",
}
# Pages that show more with a query: what to add to their default URL.
QUERIES = {"/evals/compare": ("a", "baseline_run", "b", "candidate_run")}


def fill(path: str, values: dict[str, str]) -> tuple[str | None, str]:
    """The path with its parameters filled, or None and why not."""
    names = re.findall(r"\{(\w+)(?::\w+)?\}", path)
    segment = path.strip("/").split("/", 1)[0]
    out = path
    for name in names:
        which = PARAMS.get(f"{segment}:{name}") or PARAMS.get(name)
        value = values.get(which) if which else None
        if not value:
            return None, (f"no value for {{{name}}}" if which else
                          f"the bench does not know what {{{name}}} names")
        out = re.sub(r"\{" + name + r"(?::\w+)?\}", value, out)
    return out, ""


@dataclass
class Timing:
    path: str  # the route, as declared
    variant: str  # the filter
    url: str
    budget_ms: float
    values_ms: list[float] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    cpu_ms: float | None = None  # keel serve's CPU (user + system) per timed request
    sql_ms: float | None = None  # in the profile pass: all statements of one request
    statements: int | None = None
    slowest_ms: float | None = None
    slowest_sql: str = ""
    slowest_rows: int | None = None  # rows the slowest statement's WHERE selects (SQLite)
    plan: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.values_ms)

    @property
    def p95(self) -> float:
        s = sorted(self.values_ms)
        return s[max(0, math.ceil(0.95 * len(s)) - 1)]

    @property
    def max(self) -> float:
        return max(self.values_ms)

    @property
    def ok(self) -> bool:
        return set(self.status) == {"200"} and self.p95 < self.budget_ms


def variants(path: str, url: str, nav: bool, loaded: Loaded,
             client: Any) -> list[tuple[str, str]]:
    """(label, URL) of the filters a page is timed with: the shared filter's on the pages
    in the navigation, the default elsewhere."""
    v = loaded.values
    if path in QUERIES:
        a, va, b, vb = QUERIES[path]
        if v.get(va) and v.get(vb):
            return [("default", f"{url}?{a}={v[va]}&{b}={v[vb]}")]
    if not nav or "{" in path:
        return [("default", url)]
    out = [("default", path), (f"feature={v['feature']}", f"{path}?feature={v['feature']}"),
           (f"team={v['team']}", f"{path}?team={v['team']}"),
           ("range=30d", f"{path}?range=30d"), ("range=24h", f"{path}?range=24h")]
    if path == "/traces":
        out.append(("status=error", "/traces?status=error"))
        first = client.get("/traces")
        m = re.search(r'href="(/traces\?[^"]*cursor=[^"]+)"', first.text)
        if m:
            out.append(("second page", m.group(1).replace("&amp;", "&")))
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_pages(client: Any, paths: list[str], nav: set[str], loaded: Loaded,
               args: argparse.Namespace, skipped: list[tuple[str, str]],
               pid: int) -> list[Timing]:
    """Each page and filter: untimed requests, then timed ones (``--repeat``, fewer if they
    take over ``--cap`` seconds, but at least 5), one at a time."""
    out: list[Timing] = []
    for path in paths:
        url, why = fill(path, loaded.values)
        if url is None:
            skipped.append((path, why))
            log(f"  {loaded.store}: skipped {path}: {why}")
            continue
        budget = FAST_BUDGET_MS if path in FAST_PAGES else PAGE_BUDGET_MS
        for label, target in variants(path, url, path in nav, loaded, client):
            t = Timing(path, label, target, budget)
            for _ in range(args.warmup):
                client.get(target)
            began = time.perf_counter()
            cpu0 = cpu_s(pid)
            for i in range(args.repeat):
                if i >= 5 and time.perf_counter() - began > args.cap:
                    break
                a = time.perf_counter()
                r = client.get(target)
                t.values_ms.append((time.perf_counter() - a) * 1000)
                t.status[str(r.status_code)] = t.status.get(str(r.status_code), 0) + 1
                t.bytes = len(r.content)
            t.cpu_ms = (cpu_s(pid) - cpu0) * 1000 / len(t.values_ms)
            out.append(t)
            log(f"  {loaded.store}: {path} [{label}]: p50 {t.p50:.1f} ms, p95 {t.p95:.1f} ms, "
                f"max {t.max:.1f} ms, status {t.status}, {t.bytes / 1024:.0f} KiB")
    return out


async def explain(url: str, dialect: str, sql: str, params: Any) -> str:
    store = Store(url)
    try:
        async with store.connect() as conn:
            if dialect == "sqlite":
                rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)).all()
                return "\n".join(str(r[-1]) for r in rows)
            rows = (await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql,
                                               params)).all()
            return "\n".join(str(r[0]) for r in rows)
    finally:
        await store.aclose()


async def rows_read(url: str, sql: str, params: Any) -> int | None:
    """How many rows a statement's FROM ... WHERE selects (SQLite, one table, ``?``
    parameters), or None when it is not that simple."""
    m = re.match(r"(?is)SELECT (.*?) (FROM \w+ WHERE .*?)(?= GROUP BY | ORDER BY | LIMIT |$)",
                 " ".join(sql.split()))
    if not m or "SELECT" in m.group(2).upper():
        return None
    skip, take = m.group(1).count("?"), m.group(2).count("?")
    store = Store(url)
    try:
        async with store.connect() as conn:
            return int((await conn.exec_driver_sql(
                "SELECT count(*) " + m.group(2), tuple(params[skip:skip + take]))).scalar_one())
    except Exception:  # the bench's guess at the statement's shape was wrong: no count
        return None
    finally:
        await store.aclose()


def profile(settings: Any, cfg: Any, loaded: Loaded, timings: list[Timing]) -> None:
    """Each timed page once more on keel's app in this process: its statements, their
    time, and the plan of the slowest one of every page over its budget."""

    app = InProcess(settings, cfg).start()
    try:
        client = login(app.url)
        for t in timings:
            client.get(t.url)  # warm
            runs = []
            for _ in range(3):
                app.statements.clear()
                client.get(t.url)
                runs.append(list(app.statements))
            stmts = sorted(runs, key=lambda r: sum(s[2] for s in r))[1]  # the median
            t.statements = len(stmts)
            t.sql_ms = sum(s[2] for s in stmts)
            if stmts:
                sql, params, ms = max(stmts, key=lambda s: s[2])
                t.slowest_ms, t.slowest_sql = ms, " ".join(sql.split())
                if not t.ok:
                    dialect = "sqlite" if loaded.store == "sqlite" else "postgresql"
                    t.plan = asyncio.run(explain(loaded.url, dialect, sql, params))
                    if dialect == "sqlite":
                        t.slowest_rows = asyncio.run(rows_read(loaded.url, sql, params))
            log(f"  {loaded.store}: {t.path} [{t.variant}]: {t.statements} statements, "
                f"{t.sql_ms:.1f} ms of SQL, slowest {t.slowest_ms or 0:.1f} ms")
    finally:
        app.stop()


# --- one store --------------------------------------------------------------------------------


def store_url(name: str, args: argparse.Namespace) -> str:
    return f"sqlite:///{WORK / 'sqlite' / 'keel.db'}" if name == "sqlite" \
        else f"{args.pg}/{PG_NAME}"


async def pg_admin(base: str, sql: str) -> None:
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def pg_exists(base: str) -> bool:
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1",
                                        PG_NAME))
    finally:
        await conn.close()


def drop(name: str, args: argparse.Namespace) -> None:
    """Remove the bench's database of this store (and its data directory)."""
    if name == "postgres":
        asyncio.run(pg_admin(args.pg, f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
    shutil.rmtree(WORK / name, ignore_errors=True)


async def policy_values(url: str) -> dict[str, str]:
    """A policy and its version as keel serve recorded them when it started."""
    store = Store(url)
    try:
        async with store.connect() as conn:
            row = (await conn.exec_driver_sql(
                "SELECT name, version FROM policy_versions ORDER BY name, version")).first()
    finally:
        await store.aclose()
    return {"policy": str(row[0]), "policy_version": str(row[1])} if row else {}


def vm_rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_store(name: str, args: argparse.Namespace, end: float) -> dict[str, Any]:
    home = WORK / name
    meta = home / "loaded.json"
    config_path = home / "keel.yaml"
    sqlite_path = WORK / "sqlite" / "keel.db" if name == "sqlite" else None
    load_before = loadavg()
    if args.reuse:
        if not meta.exists() or (name == "postgres" and not asyncio.run(pg_exists(args.pg))):
            sys.exit(f"--reuse: no kept {STORES[name]} database of this bench (run once with "
                     "--keep)")
        loaded = Loaded(**json.loads(meta.read_text()))
        log(f"{name}: reusing {loaded.traces:,} traces loaded {loaded.loaded_at}")
    else:
        drop(name, args)
        home.mkdir(parents=True)
        if name == "postgres":
            asyncio.run(pg_admin(args.pg, f'CREATE DATABASE "{PG_NAME}"'))
        loaded = Loaded(name, store_url(name, args), traces=args.traces, seed=args.seed,
                        start=end - 30 * DAY, end=end, batch=args.batch,
                        payload_share=args.payload_share,
                        loaded_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
        write_config(World(args.seed), config_path)
        asyncio.run(load_store(loaded, settings_for(loaded, home / "data", config_path),
                               sqlite_path))
        meta.write_text(json.dumps(asdict(loaded), indent=1))
        log(f"{name}: database {loaded.db_bytes / 2**30:.2f} GiB")
    settings = settings_for(loaded, home / "data", config_path)
    cfg = parse_config(yaml.safe_load(config_path.read_text()), str(config_path))
    paths, nav = console_paths(settings, cfg)
    log(f"{name}: {len(paths)} console pages: {', '.join(paths)}")
    serve = KeelServe(settings, home / "keel-serve.log")
    skipped: list[tuple[str, str]] = []
    try:
        serve.wait_ready()
        log(f"{name}: keel serve answered /health after {serve.started_s:.1f} s")
        loaded.values.update(asyncio.run(policy_values(loaded.url)))
        client = login(serve.url)
        try:
            timings = time_pages(client, paths, nav, loaded, args, skipped, serve.proc.pid)
        finally:
            client.close()
        rss = vm_rss_kib(serve.proc.pid)
    finally:
        serve.stop()
    if not args.no_profile:
        profile(settings, cfg, loaded, timings)
    result = {"loaded": asdict(loaded), "reused": bool(args.reuse), "paths": paths,
              "timings": [{**asdict(t), "p50": t.p50, "p95": t.p95, "max": t.max, "ok": t.ok}
                          for t in timings],
              "skipped": skipped, "machine": machine(), "load_before": load_before,
              "load_after": loadavg(), "serve_start_s": serve.started_s, "serve_rss_kib": rss,
              "warmup": args.warmup, "repeat": args.repeat, "server": server_version(loaded),
              "command": "python bench/console_scale.py"
                         + "".join(f" {a}" for a in sys.argv[1:])}
    (WORK / f"results-{name}.json").write_text(json.dumps(result, indent=1))
    if not (args.keep or args.reuse):
        drop(name, args)
        log(f"{name}: dropped the bench's database (--keep keeps it for --reuse)")
    return result


def server_version(loaded: Loaded) -> str:
    async def ask() -> str:
        store = Store(loaded.url)
        try:
            async with store.connect() as conn:
                sql = "SELECT sqlite_version()" if loaded.store == "sqlite" \
                    else "SHOW server_version"
                return str((await conn.exec_driver_sql(sql)).scalar_one())
        finally:
            await store.aclose()

    return asyncio.run(ask())


# --- report -----------------------------------------------------------------------------------


def ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def verdict(t: dict[str, Any]) -> str:
    if set(t["status"]) != {"200"}:
        return "**ERROR** " + ", ".join(f"{k} x{v}" for k, v in t["status"].items())
    return "within" if t["p95"] < t["budget_ms"] else "**OVER**"


def section(results: dict[str, dict[str, Any]]) -> str:
    names = [n for n in STORES if n in results]
    L = [START, "## Console at 10M traces (`bench/console_scale.py`)\n",
         "_Generated by `bench/console_scale.py` from the last run on each store "
         "(bench/.work/console-scale/results-*.json); edit the script, not this section._\n"]
    for n in names:
        r = results[n]
        lo = r["loaded"]
        m = r["machine"]
        not10 = "" if lo["traces"] == 10_000_000 else \
            f" — **{lo['traces']:,} traces, not 10,000,000**"
        L.append(f"- {STORES[n]}: `{r['command']}` · {m['date']} · {m['cpu']}, {m['cores']} "
                 f"cores · kernel {m['kernel']} · Python {m['python']} · keel {m['keel']} · "
                 f"{STORES[n]} {r['server']} · load average before {r['load_before']}, after "
                 f"{r['load_after']}{not10}")
    L.append("")
    L.append(f"Target (from the issue): every console page under {PAGE_BUDGET_MS:.0f} ms at "
             f"p95 on both stores; the trace list (`/traces`) and a trace's page "
             f"(`/traces/{{trace_id}}`) under {FAST_BUDGET_MS:.0f} ms. A page is within budget "
             "when every filter it was timed with is (p95 of the timed requests, all "
             "answered 200).\n")
    for n in names:
        ts = results[n]["timings"]
        by_page: dict[str, bool] = {}
        for t in ts:
            by_page[t["path"]] = by_page.get(t["path"], True) and verdict(t) == "within"
        over = [p for p, ok in by_page.items() if not ok]
        L.append(f"- **{STORES[n]}** ({results[n]['loaded']['traces']:,} traces): "
                 f"{len(by_page) - len(over)} of {len(by_page)} pages within budget"
                 + (f"; over: {', '.join(f'`{p}`' for p in over)}" if over else "") + ".")
    L.append("")
    # the verdict per page
    head = "| page | budget p95 |"
    sep = "|---|---:|"
    for n in names:
        head += f" {STORES[n]}: worst p95 (filter) | verdict |"
        sep += "---|---|"
    L += [head, sep]
    pages = list(dict.fromkeys(t["path"] for n in names for t in results[n]["timings"]))
    for p in pages:
        line = f"| `{p}` | {FAST_BUDGET_MS if p in FAST_PAGES else PAGE_BUDGET_MS:.0f} ms |"
        for n in names:
            ts = [t for t in results[n]["timings"] if t["path"] == p]
            if not ts:
                line += " not timed | - |"
                continue
            worst = max(ts, key=lambda t: t["p95"])
            bad = [t for t in ts if verdict(t) != "within"]
            line += (f" {ms(worst['p95'])} ms ({worst['variant']}) | "
                     + ("within budget" if not bad else
                        "**over budget** (" + ", ".join(t["variant"] for t in bad) + ")")
                     + " |")
        L.append(line)
    L.append("")
    for n in names:
        for path, why in results[n]["skipped"]:
            L.append(f"- {STORES[n]}: `{path}` not timed: {why}.")
    L.append("")
    # every timed variant
    counts = ", ".join(f"{STORES[n]}: {results[n]['warmup']} untimed, then "
                       f"{results[n]['repeat']} timed" for n in names)
    L.append(f"Every page and filter: client wall time per request in ms ({counts}; fewer "
             "(*n*) when a page's timed requests took over `--cap` s); *CPU* = `keel serve`'s "
             "CPU time (user + system, all threads, from /proc; SQLite runs inside it, "
             "PostgreSQL's server does not count) per timed request, in ms, a figure the "
             "machine's other work does not inflate; *SQL* = the profile pass on keel's app "
             "in this process: statements of one request / their total ms / the slowest "
             "one's ms.\n")
    head = "| page | filter | budget |"
    sep = "|---|---|---:|"
    for n in names:
        head += f" {STORES[n]} p50 | p95 | max | n | verdict | CPU | SQL |"
        sep += "---:|---:|---:|---:|---|---:|---|"
    L += [head, sep]
    keys = list(dict.fromkeys((t["path"], t["variant"]) for n in names
                              for t in results[n]["timings"]))
    for path, variant in keys:
        budget = FAST_BUDGET_MS if path in FAST_PAGES else PAGE_BUDGET_MS
        line = f"| `{path}` | {variant} | {budget:.0f} |"
        for n in names:
            t = next((t for t in results[n]["timings"]
                      if (t["path"], t["variant"]) == (path, variant)), None)
            if t is None:
                line += " - | - | - | - | - | - | - |"
                continue
            sql = (f"{t['statements']} / {ms(t['sql_ms'])} / {ms(t['slowest_ms'])}"
                   if t.get("statements") is not None else "-")
            line += (f" {ms(t['p50'])} | **{ms(t['p95'])}** | {ms(t['max'])} | "
                     f"{len(t['values_ms'])} | {verdict(t)} | {ms(t.get('cpu_ms'))} | {sql} |")
        L.append(line)
    L.append("")
    # the data
    L.append("The data and how long it took to load:\n")
    L.append("| | " + " | ".join(STORES[n] for n in names) + " |")
    L.append("|---|" + "---:|" * len(names))

    def row(label: str, f: Any) -> None:
        L.append(f"| {label} | " + " | ".join(f(results[n], results[n]["loaded"])
                                             for n in names) + " |")

    row("traces (with a payload)", lambda r, lo: f"**{lo['traces']:,}** ({lo['payloads']:,})")
    row("loaded", lambda r, lo: lo["loaded_at"] + (" (timed again with `--reuse`)"
                                                   if r["reused"] else ""))
    row("trace load, end to end", lambda r, lo: f"{lo['traces_s']:,.0f} s = **"
        f"{lo['traces'] / lo['traces_s']:,.0f} traces/s**" if lo["traces_s"] else "-")
    row("of which in `insert_rows` (traces + rollups)", lambda r, lo:
        f"{lo['insert_s']:,.0f} s = {lo['traces'] / lo['insert_s']:,.0f} traces/s"
        if lo["insert_s"] else "-")
    row("of which feedback and outcomes (+ rollups)", lambda r, lo: f"{lo['extra_s']:,.0f} s")
    row("building the rows (second process, overlapped)",
        lambda r, lo: f"{lo['build_s']:,.0f} s")
    row("keys and prompts / datasets, eval runs, reviews",
        lambda r, lo: f"{lo['setup_s']:,.0f} s / {lo['after_s']:,.0f} s")
    row("before timing", lambda r, lo: lo["prep_note"])
    row("database size", lambda r, lo: f"**{lo['db_bytes'] / 2**30:,.2f} GiB**")
    for t in ("traces", "rollups", "rollup_sketches", "rollup_prompt_sketches", "rollup_errors",
              "feedback", "outcomes", "reviews", "eval_runs", "audit_entries"):
        row(f"`{t}` rows", lambda r, lo, t=t: f"{lo['table_rows'].get(t, 0):,}")
    row("keys / prompt versions / datasets", lambda r, lo:
        f"{lo['keys']} / {lo['prompt_versions']} / {lo['datasets']}")
    row("reviews (pending) / eval runs (results)", lambda r, lo:
        f"{lo['reviews']:,} ({lo['reviews_pending']:,}) / {lo['eval_runs']:,} "
        f"({lo['eval_results']:,})")
    row("`keel serve`: /health after start / RSS after the timed requests",
        lambda r, lo: f"{r['serve_start_s']:.1f} s / {r['serve_rss_kib'] / 1024:,.0f} MiB")
    L.append("")
    # the slow statements
    slow = []
    for n in names:  # per store and page over budget, its worst filter
        worst: dict[str, dict[str, Any]] = {}
        for t in results[n]["timings"]:
            if verdict(t) != "within" and (t["path"] not in worst
                                           or t["p95"] > worst[t["path"]]["p95"]):
                worst[t["path"]] = t
        slow += [(n, t) for t in worst.values()]
    if slow:
        L.append("Over budget, per page its worst filter: the slowest statement of a request "
                 "(profile pass), and its plan:\n")
        for n, t in slow:
            L.append(f"- {STORES[n]} `{t['path']}` [{t['variant']}]: p95 {ms(t['p95'])} ms "
                     f"(budget {t['budget_ms']:.0f}); {t.get('statements')} statements, "
                     f"{ms(t.get('sql_ms'))} ms of SQL; the slowest "
                     f"{ms(t.get('slowest_ms'))} ms"
                     + (f", selecting {t['slowest_rows']:,} rows" if t.get("slowest_rows")
                        else "") + f": `{t.get('slowest_sql', '')[:400]}`")
        L.append("")
        for n, t in slow:
            if t.get("plan"):
                how = "EXPLAIN QUERY PLAN" if n == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS)"
                L.append(f"<details><summary>{STORES[n]} `{t['path']}` [{t['variant']}]: "
                         f"{how}</summary>\n\n```\n{t['slowest_sql']}\n--\n{t['plan']}\n```\n"
                         "</details>\n")
    else:
        L.append("No page over its budget.\n")
    L.append(METHOD)
    L.append(END)
    return "\n".join(L) + "\n"


METHOD = (
    "Method: one store at a time, on a machine shared with other work (see the load averages; "
    "PostgreSQL on the same machine, default settings). **Data**: N traces with start times "
    "over the 30 days before the load (per hour in proportion to a volume curve: European and "
    "American office hours, quiet nights, weekends at 40%, +30% over the month), 20 features "
    "(Zipf-like shares), 50 teams (2-3 owners per feature and a guest team), 10 models with "
    "OpenAI, Anthropic and Gemini prices, 40 prompts x 5 versions released during the month "
    "with 2-day canary ramps (10% of requests with no prompt), ~2% errors of 5 types, a 3-hour "
    "incident of one provider, 0.4% policy blocks and 4% guard findings on the 11 guarded "
    "features, 2% fallbacks and 1% retries (attempts > 1, with the attempt log), keel cache "
    "hits, users and daily sessions; lognormal tokens and latency; ids shaped like keel's "
    "(`new_trace_id`: 48-bit ms clock + 80 random bits), so they sort by start time. Seeded, "
    "with one window for the stores of a run (a store re-run alone gets its own window). Built "
    "in a second process (`trace_values` of a `keel.types.Trace`, as the trace writer builds "
    "rows) and written in time order through `keel.store.traces.insert_rows` (traces and "
    "rollups in one transaction per batch), with each batch's feedback and outcomes and their "
    "rollups; 1% of the traces carry a small payload (to keep the size sane). Keys, prompts, "
    "datasets, eval runs and reviews go through keel's services. **Timing**: `keel serve` "
    "(uvicorn, one process) as a child process on the store, logged into through `/login` as a "
    "browser does; every GET page of `keel.console.routes.console_routes(state)`, path "
    "parameters filled with real values; one request at a time on one keep-alive connection, "
    "wall time from sending the request to the last byte of the body, on loopback (keel sends "
    "no Server-Timing header; this is client time, HTML transfer included). **SQL**: each page "
    "once more on keel's app built in the bench process (uvicorn in a thread), every statement "
    "timed with SQLAlchemy's cursor events; the plan is of the slowest statement of a page over "
    "its budget.")


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=10_000_000, help="traces to load [10000000]")
    ap.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--reuse", action="store_true",
                    help="time the kept database again (loaded earlier with --keep)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the loaded database for a later --reuse [drop it]")
    ap.add_argument("--clean", action="store_true", help="drop the kept databases and exit")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                    help=f"PostgreSQL server, no database name: {PG_NAME} is created there")
    ap.add_argument("--batch", type=int, default=5000, help="traces per insert_rows [5000]")
    ap.add_argument("--payload-share", type=float, default=0.01,
                    help="share of traces with a request/response payload [0.01]")
    ap.add_argument("--warmup", type=int, default=3, help="untimed requests per page [3]")
    ap.add_argument("--repeat", type=int, default=25, help="timed requests per page [25]")
    ap.add_argument("--cap", type=float, default=40.0,
                    help="stop timing a page after this many seconds (at least 5 requests) [40]")
    ap.add_argument("--no-profile", action="store_true", help="skip the SQL profile pass")
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave --output alone")
    args = ap.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    if args.clean:
        for name in stores:
            drop(name, args)
        log("dropped the bench's databases")
        return
    if args.traces < 10_000 or args.batch < 1 or args.repeat < 1:
        sys.exit("--traces must be at least 10000; --batch and --repeat at least 1")
    WORK.mkdir(parents=True, exist_ok=True)
    end = time.time()  # the window's end, the same for every store of this run
    for name in stores:
        run_store(name, args, end)
    results = {n: json.loads((WORK / f"results-{n}.json").read_text()) for n in STORES
               if (WORK / f"results-{n}.json").exists()}
    text = section(results)
    print()
    print(text)
    if not args.no_write:
        write_section(Path(args.output), text, START, END)
        log(f"wrote the console section of {args.output}")


if __name__ == "__main__":
    main()
