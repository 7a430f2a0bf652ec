"""Signals at scale: what one alert tick and one drift check cost on a store of millions of
traces, on SQLite and on PostgreSQL.

    .venv/bin/python bench/console_scale.py --traces 1500000 --store both --keep   # the data
    .venv/bin/python bench/signals_scale.py                                         # then this

It reads the stores bench/console_scale.py kept (``--keep``: the SQLite file in
bench/.work/console-scale/sqlite/, the PostgreSQL database ``keel_bench_console``): traces
of 20 features, 50 teams and 10 models over 30 days, with their rollups, feedback, outcomes,
held reviews and eval runs. Nothing is written to them but alert state and drift reports.

Timed, in this process, through a warm ``Store`` (``--repeat`` times each, after one
untimed call):

* **alert tick**: ``AlertManager.tick`` with the built-in early warnings (six rules, per
  feature and per team within a feature) and ten more rules of every kind (thresholds per
  feature, team and model, changes against the day and the week before, anomalies against
  24 hours, a divergence, the review backlog and an eval pass rate): evaluation over the
  rollups, the tracks stepped and stored. Each tick at a new minute, so each is evaluated.
* **drift check**: ``DriftMonitor.check`` of the busiest feature, 1,000 traces sampled
  from each window (the last 24 hours against the 7 days before): the sampled lookups, the
  payloads, the descriptors, the tests and the text classifier.

Memory: the peak of Python's allocations during one more call, traced and not timed
(``tracemalloc``), and the process's peak RSS (``ru_maxrss``). The section between
``<!-- signals:start -->`` and ``<!-- signals:end -->`` of bench/RESULTS.md is replaced
with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.common import machine, write_section  # noqa: E402

WORK = BENCH / ".work" / "console-scale"
PG_NAME = "keel_bench_console"
START, END = "<!-- signals:start -->", "<!-- signals:end -->"

RULES: list[dict[str, Any]] = [
    {"name": "errors-by-feature", "measure": "error_rate", "window": "1h", "warning": 0.05,
     "critical": 0.1, "scope": {"by": "feature"}},
    {"name": "errors-by-model", "measure": "error_rate", "window": "1h", "critical": 0.1,
     "scope": {"by": "model"}},
    {"name": "p95-by-team", "measure": "latency_p95_ms", "window": "1h", "warning": 5000,
     "scope": {"by": "team"}},
    {"name": "spend-day-on-day", "measure": "spend_usd", "kind": "change", "window": "24h",
     "warning": 0.5, "scope": {"by": "feature"}},
    {"name": "cost-week-on-week", "measure": "cost_per_request_usd", "kind": "change",
     "window": "24h", "windows_back": 7, "warning": 0.3, "scope": {"by": "feature"}},
    {"name": "latency-anomaly", "measure": "latency_p95_ms", "kind": "anomaly",
     "window": "1h", "history": 24, "warning": 4, "scope": {"by": "feature"}},
    {"name": "acceptance-divergence", "measure": "acceptance_rate", "kind": "divergence",
     "window": "24h", "direction": "below", "warning": 0.25, "scope": {"by": "feature"}},
    {"name": "fallbacks", "measure": "fallbacks", "window": "1h", "warning": 50},
    {"name": "review-backlog", "measure": "review_backlog", "warning": 50,
     "scope": {"by": "feature"}},
    {"name": "eval-pass-rate", "measure": "eval_pass_rate", "window": "7d",
     "direction": "below", "warning": 0.9},
]


def url_of(name: str, args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    return (f"sqlite:///{WORK / 'sqlite' / 'keel.db'}" if name == "sqlite"
            else f"{args.pg}/{PG_NAME}")


async def data_end(store: Any) -> float:
    """The end of the latest minute bucket the rollups hold: where the store's month ends."""
    import sqlalchemy as sa

    from keel.store.schema import rollups

    r = rollups.c
    async with store.connect() as conn:
        last = (await conn.execute(sa.select(sa.func.max(r.bucket))
                                   .where(r.granularity == "m"))).scalar_one()
    if last is None:
        raise SystemExit("the store holds no traces: load it with bench/console_scale.py "
                         "--keep first")
    return float(last) + 60.0


async def forget_claims(store: Any) -> None:
    from keel.store.schema import schedule_ticks

    async with store.begin() as conn:
        await conn.execute(schedule_ticks.delete().where(
            schedule_ticks.c.claimed_by == "bench"))


async def busiest_feature(store: Any, since: float) -> str:
    import sqlalchemy as sa

    from keel.store.schema import rollups

    r = rollups.c
    q = (sa.select(r.feature, sa.func.sum(r.requests).label("n"))
         .where(r.granularity == "d", r.bucket >= since).group_by(r.feature)
         .order_by(sa.text("n DESC")).limit(1))
    async with store.connect() as conn:
        return str((await conn.execute(q)).scalar_one())


async def timed(call: Any, repeat: int) -> dict[str, Any]:
    await call(0)  # warm
    times = []
    for i in range(1, repeat + 1):
        t0 = time.perf_counter()
        await call(i)
        times.append((time.perf_counter() - t0) * 1000)
    tracemalloc.start()  # one more call, traced (tracing slows it: not timed)
    await call(repeat + 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"p50_ms": statistics.median(times), "max_ms": max(times), "n": len(times),
            "peak_python_mib": peak / 2**20}


async def run_store(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from keel.config import parse_config
    from keel.monitor.alerts.manager import AlertManager
    from keel.monitor.drift_schedule import DriftMonitor
    from keel.store import Store
    from keel.store.traces import count_traces

    store = Store(url_of(name, args))
    try:
        await store.upgrade()  # alert and drift tables on a store loaded before them
        total = await count_traces(store)
        now = await data_end(store)  # evaluate as of the data's end (windows hold traffic)
        feature = await busiest_feature(store, now - 30 * 86400)
        config = parse_config({"features": [{"name": feature}],
                               "alerts": {"rules": RULES},
                               "drift": {"sample": args.sample}}, "bench.yaml")
        await forget_claims(store)  # an earlier run's ticks are this run's again
        manager = AlertManager(store, config, replica="bench")
        series: list[int] = []

        async def tick(i: int) -> None:
            result = await manager.tick(now + 60 * (i + 1) + 0.5)
            assert result is not None
            series.append(len(result.evaluations))

        drift = DriftMonitor(store, config, replica="bench")
        checked: list[dict[str, Any]] = []

        async def check(i: int) -> None:
            checked.append(await drift.check(feature, now + i))

        alert = await timed(tick, args.repeat)
        alert["series"] = series[-1]
        alert["rules"] = len(manager.rules)
        drift_t = await timed(check, max(args.repeat // 2, 3))
        last = checked[-1]
        drift_t.update(feature=feature, n_reference=last["n_reference"],
                       n_current=last["n_current"], drifted=last["drifted"])
        return {"store": name, "traces": total, "alert": alert, "drift": drift_t,
                "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        await store.aclose()


def report(results: list[dict[str, Any]], info: dict[str, Any], argv: str) -> str:
    lines = [START, "## Signals at scale (`bench/signals_scale.py`)", "",
             "_Generated by `bench/signals_scale.py`; edit the script, not this section._", "",
             f"`{argv}` · {info['date']} · {info['cpu']}, {info['cores']} cores · Python "
             f"{info['python']} · keel {info['keel']} · load average before {info['load']}",
             "", "Method: see the script's docstring. Timed in one process through a warm "
             "store, one call at a time, on a machine shared with other work.", "",
             *[f"**{r['store']}: {r['traces']:,} traces, not 10,000,000** (the stores "
               "bench/console_scale.py kept)." for r in results if r["traces"] < 10_000_000],
             "",
             "| store | traces | alert tick: rules / series | p50 | max | peak Python alloc "
             "| drift check (feature, sampled ref / cur) | p50 | max | peak Python alloc "
             "| process peak RSS |",
             "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in results:
        a, d = r["alert"], r["drift"]
        lines.append(
            f"| {r['store']} | {r['traces']:,} | {a['rules']} / {a['series']} | "
            f"{a['p50_ms']:,.0f} ms | {a['max_ms']:,.0f} ms | {a['peak_python_mib']:.1f} MiB | "
            f"{d['feature']}, {d['n_reference']} / {d['n_current']} | {d['p50_ms']:,.0f} ms | "
            f"{d['max_ms']:,.0f} ms | {d['peak_python_mib']:.1f} MiB | {r['rss_mib']:.0f} MiB |")
    lines += ["", "Neither reads every trace: a tick reads the rollups (minute, hour and day "
              "buckets of the windows its rules name) and the review queue; a drift check "
              "makes one indexed lookup per sampled instant and reads the sampled traces' "
              "payloads. Their cost follows the rules, the series and the sample size, not "
              "the store's size. The traffic is bench/console_traffic.py's synthetic month "
              "(written by keel's authors), so the figures bound the method, not a "
              "deployment.", END, ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--sample", type=int, default=1000)
    p.add_argument("--url", default=None,
                   help="Another store to read instead (a quick check; implies --no-write).")
    p.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md.")
    args = p.parse_args()
    info = machine()
    names = ["sqlite", "postgresql"] if args.store == "both" and not args.url else [
        "sqlite" if args.url and args.url.startswith("sqlite") else args.store]
    results = [asyncio.run(run_store(n, args)) for n in names]
    print(json.dumps(results, indent=1))
    text = report(results, info, "python bench/signals_scale.py " + " ".join(sys.argv[1:]))
    if not (args.no_write or args.url):
        write_section(BENCH / "RESULTS.md", text, START, END)
    print(text)


if __name__ == "__main__":
    main()
