"""Rollups: traces, feedback and outcomes added up per time bucket, maintained as they land.

Each trace batch is added to the rollups in the transaction that stores it, so the two
never disagree: per (granularity m|h|d, bucket, feature, team, model, prompt) counters,
errors by type, and latency / time-to-first-token sketches (``keel.sketch``). Every
write is an additive upsert (``ON CONFLICT ... DO UPDATE SET c = c + excluded.c``, the same
SQL on SQLite and PostgreSQL), so concurrent writers and replicas never lose an update;
rows are written in key order so concurrent transactions lock them in the same order.
``rebuild`` recomputes a time range from the raw rows.

The sketches are kept at two levels: per full key (``rollup_sketches``) and, for the hour
and day buckets, per (granularity, bucket, feature, prompt) (``rollup_prompt_sketches``):
the same counts added up over teams and models. The common views (the overview by feature,
the prompts by version) filter and group by feature and prompt only; over a month of
traffic they would merge several hundred thousand full-key rows per request, 2.5 times
fewer day rows at the coarse level (a feature serves a few teams through a few models;
more at higher volume). Both levels are written from the same per-minute counts by the same
additive upserts in the same transaction, so they never disagree: the full rows of one
(feature, prompt) summed over teams and models are, index by index, the coarse row.

Why this shape: a write costs about one row per trace, granularity and metric at any level
(a batch rarely holds two traces of one key with the same index), so each level is paid for
on the write path. Minute windows (six hours at most) are small at the full level, so the
coarse one skips minutes: about 60% more sketch rows written instead of 95%. A level per
feature alone would be smaller again for the overview, but the prompts pages group by
prompt, and two levels would double that write cost. One blob per key and metric would be
fewer rows, but a write would then read, merge and write back instead of adding, which
concurrent writers cannot share without locking. The coarse key leads with (granularity,
metric, bucket), so the rows of one metric's window are one range of the key's index: on
PostgreSQL one index scan instead of a scan of the table (a month by day at 1.5M traces:
155 ms instead of 460), and on SQLite, where the table is WITHOUT ROWID (rows stored in key
order), one contiguous read without a lookup per row, and an upsert updates one b-tree
instead of two.

Feedback is rolled up at the time of the trace it is about (so "acceptance of the answers
given in March" is a window query); outcomes at their own time, per feature and name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from keel import sketch
from keel.store.db import Store
from keel.store.schema import (
    feedback,
    outcomes,
    rollup_errors,
    rollup_outcomes,
    rollup_prompt_sketches,
    rollup_sketches,
    rollups,
    traces,
)
from keel.store.sql import placeholders

GRANULARITIES: dict[str, int] = {"m": 60, "h": 3600, "d": 86400}
KEY = ("granularity", "bucket", "feature", "team", "model", "prompt")
PROMPT_KEY = ("granularity", "bucket", "feature", "prompt")  # the coarse sketch level
PROMPT_GRANULARITIES = ("h", "d")  # the coarse level's; minute windows read the full one
TRACE_COUNTERS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens",
                  "reasoning_tokens", "cost_usd", "cache_hits", "cost_saved_usd",
                  "latency_ms_sum", "fallbacks", "guard_flagged", "guard_blocked")
FEEDBACK_COUNTERS = ("feedback", "thumbs_up", "thumbs_down", "accepted", "edited", "rejected",
                     "escalated", "rework_sum", "rework_n", "critical_errors")
COUNTERS = (*TRACE_COUNTERS, *FEEDBACK_COUNTERS)
OUTCOMES = ("accepted", "edited", "rejected", "escalated")
BATCH = 400

Key = tuple[str, float, str, str, str, str]
PromptKey = tuple[str, float, str, str]


def bucket(t: float, granularity: str) -> float:
    size = GRANULARITIES[granularity]
    return float(math.floor(t / size) * size)


def tried(attempt_log: Any) -> int:
    """How many deployments a trace's attempt log names, those skipped by an open circuit
    included: the stored column as keel writes it (compact JSON, one ``"deployment":`` per
    attempt) or as read back (a list)."""
    if isinstance(attempt_log, str):
        return attempt_log.count('"deployment":')
    if isinstance(attempt_log, list):
        return len(attempt_log)
    return 0


def guard_actions(guard: Any) -> tuple[int, int]:
    """Whether a trace's guardrail findings include a ``flag`` and a ``block`` (1 or 0
    each). ``guard`` is the stored column: the compact JSON keel writes (on the write path)
    or the list it reads back (a rebuild)."""
    if isinstance(guard, str):
        return int('"action":"flag"' in guard), int('"action":"block"' in guard)
    if isinstance(guard, list):
        actions = {h.get("action") for h in guard if isinstance(h, dict)}
        return int("flag" in actions), int("block" in actions)
    return 0, 0


def prompt_label(name: str | None, version: int | None) -> str:
    return f"{name}@{version}" if name else ""


class _Minute:
    """One minute key's trace sums: counters (``TRACE_COUNTERS`` order), errors by type and
    the two sketches (index -> count)."""

    __slots__ = ("errors", "latency", "sums", "ttft")

    def __init__(self) -> None:
        self.sums = [0.0] * len(TRACE_COUNTERS)
        self.errors: dict[str, int] = {}
        self.latency: dict[int, int] = {}
        self.ttft: dict[int, int] = {}


Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]],
             list[tuple[Any, ...]]]  # counters, errors, sketches, outcomes: what apply writes


class Deltas:
    """Additions to the rollup tables, accumulated in memory, written by ``apply``.

    ``rows()`` turns them into the rows ``apply`` writes (folded, in key order), once; it is
    pure CPU, so the trace writer calls it in its worker thread, not on the event loop."""

    def __init__(self) -> None:
        self.counters: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.errors: dict[tuple[Key, str], int] = defaultdict(int)
        # per (key, metric): sketch index -> count
        self.sketches: dict[tuple[Key, str], dict[int, int]] = {}
        # the same counts per (granularity, bucket, feature, prompt, metric)
        self.prompt_sketches: dict[tuple[PromptKey, str], dict[int, int]] = {}
        self.outcomes: dict[tuple[str, float, str, str], list[float]] = {}
        # traces are added per minute only (the writer's hot loop), and folded into the
        # minute, hour and day rows once per batch by _fold
        self._minute: dict[Key, _Minute] = {}
        self._rows: Rows | None = None
        self._prompt_rows: list[tuple[Any, ...]] = []

    def __bool__(self) -> bool:
        return bool(self.counters or self.outcomes or self._minute)

    def _keys(self, t: float, feature: str, team: str, model: str, prompt: str) -> list[Key]:
        return [(g, bucket(t, g), feature, team, model, prompt) for g in GRANULARITIES]

    def add_trace(self, row: dict[str, Any]) -> None:
        self._rows = None
        ok = int(row["status"]) < 400
        get = row.get
        name, version = get("prompt_name"), get("prompt_version")
        key: Key = ("m", float(math.floor(float(row["start_time"]) / 60) * 60),
                    get("feature") or "", get("team") or "", get("model_requested") or "",
                    f"{name}@{version}" if name else "")
        m = self._minute.get(key)
        if m is None:
            m = self._minute[key] = _Minute()
        c = m.sums  # the order of TRACE_COUNTERS
        c[0] += 1
        c[2] += get("input_tokens") or 0
        c[3] += get("output_tokens") or 0
        c[4] += get("cached_tokens") or 0
        c[5] += get("reasoning_tokens") or 0
        c[6] += get("cost_usd") or 0.0
        c[7] += 1 if get("cache_hit") else 0
        c[8] += get("cost_saved_usd") or 0.0
        guard = get("guard")
        if guard:
            flagged, blocked = guard_actions(guard)
            c[11] += flagged
            c[12] += blocked
        if not ok:
            c[1] += 1
            etype = get("error_type") or f"http_{row['status']}"
            m.errors[etype] = m.errors.get(etype, 0) + 1
            return
        latency = get("latency_ms") or 0.0
        c[9] += latency
        if (get("attempts") or 0) > 1 or tried(get("attempt_log")) > 1:
            c[10] += 1  # served after a failed attempt or a skipped one (an open circuit)
        i = sketch.index(latency)
        m.latency[i] = m.latency.get(i, 0) + 1
        ttft = get("ttft_ms")
        if ttft is not None:
            i = sketch.index(ttft)
            m.ttft[i] = m.ttft.get(i, 0) + 1

    def _fold(self) -> None:
        """Add the per-minute trace sums to the minute, hour and day rows."""
        if not self._minute:
            return
        for key, m in self._minute.items():
            t = key[1]
            for k in (key, ("h", bucket(t, "h"), *key[2:]), ("d", bucket(t, "d"), *key[2:])):
                d = self.counters[k]
                for counter, v in zip(TRACE_COUNTERS, m.sums, strict=True):
                    if v:
                        d[counter] += v
                for etype, n in m.errors.items():
                    self.errors[(k, etype)] += n
                for metric, counts in (("latency", m.latency), ("ttft", m.ttft)):
                    if counts:
                        into = self.sketches.setdefault((k, metric), {})
                        for idx, n in counts.items():
                            into[idx] = into.get(idx, 0) + n
                        if k[0] == "m":
                            continue
                        coarse = self.prompt_sketches.setdefault(((k[0], k[1], k[2], k[5]),
                                                                  metric), {})
                        for idx, n in counts.items():
                            coarse[idx] = coarse.get(idx, 0) + n
        self._minute.clear()

    def add_cost(self, row: dict[str, Any], delta: float) -> None:
        """A trace's cost changed by ``delta`` (repricing)."""
        self._rows = None
        for key in self._keys(float(row["start_time"]), row.get("feature") or "",
                              row.get("team") or "", row.get("model_requested") or "",
                              prompt_label(row.get("prompt_name"), row.get("prompt_version"))):
            self.counters[key]["cost_usd"] += delta

    def add_feedback(self, row: dict[str, Any], sign: int = 1) -> None:
        self._rows = None
        for key in self._keys(float(row["trace_time"]), row.get("feature") or "",
                              row.get("team") or "", row.get("model") or "",
                              row.get("prompt") or ""):
            c = self.counters[key]
            c["feedback"] += sign
            if row.get("thumbs") == 1:
                c["thumbs_up"] += sign
            elif row.get("thumbs") == -1:
                c["thumbs_down"] += sign
            if row.get("outcome") in OUTCOMES:
                c[row["outcome"]] += sign
            if row.get("rework") is not None:
                c["rework_sum"] += sign * float(row["rework"])
                c["rework_n"] += sign
            if row.get("critical_error"):
                c["critical_errors"] += sign

    def add_outcome(self, row: dict[str, Any]) -> None:
        self._rows = None
        for g in GRANULARITIES:
            key = (g, bucket(float(row["at"]), g), row["feature"], row["name"])
            acc = self.outcomes.setdefault(key, [0.0, 0.0])
            acc[0] += 1
            acc[1] += float(row["value"])

    def rows(self) -> Rows:
        """The rows of each rollup table, in key order (built once until the next add).

        Every table's rows are sorted by their whole key, so every transaction takes its row
        locks in one global order. Sketch rows are ordered per (key, metric) group and by
        index inside it (the same order as sorting the whole tuples, without comparing a
        thousand tuples element by element)."""
        if self._rows is not None:
            return self._rows
        self._fold()
        counters = [(*key, *(self.counters[key].get(n, 0) for n in COUNTERS))
                    for key in sorted(self.counters)]
        errors = [(*key, etype, n) for (key, etype), n in sorted(self.errors.items())]
        sketches: list[tuple[Any, ...]] = []
        for key, metric in sorted(self.sketches):
            counts = self.sketches[(key, metric)]
            sketches.extend((*key, metric, idx, counts[idx]) for idx in sorted(counts))
        outcomes = [(*key, n, v) for key, (n, v) in sorted(self.outcomes.items())]
        coarse: list[tuple[Any, ...]] = []
        for pkey, metric in sorted(self.prompt_sketches):
            counts = self.prompt_sketches[(pkey, metric)]
            coarse.extend((*pkey, metric, idx, counts[idx]) for idx in sorted(counts))
        self._prompt_rows = coarse
        self._rows = (counters, errors, sketches, outcomes)
        return self._rows

    def prompt_sketch_rows(self) -> list[tuple[Any, ...]]:
        """The rows of the coarse sketch level (``rollup_prompt_sketches``), in key order:
        built by ``rows()`` with the others."""
        self.rows()
        return self._prompt_rows


def _quote(store: Store) -> Any:
    return store.engine.dialect.identifier_preparer.quote


def _upsert_sql(store: Store, table: sa.Table, keys: Sequence[str],
                adds: Sequence[str]) -> str:
    cache_key = f"upsert:{table.name}"
    sql = store.sql_cache.get(cache_key)
    if sql is None:
        q = _quote(store)
        t = q(table.name)
        cols = [*keys, *adds]
        sql = (f"INSERT INTO {t} ({', '.join(q(c) for c in cols)}) VALUES "
               f"({placeholders(store.engine.dialect.paramstyle, len(cols))}) "
               f"ON CONFLICT ({', '.join(q(k) for k in keys)}) DO UPDATE SET "
               + ", ".join(f"{q(c)} = {t}.{q(c)} + excluded.{q(c)}" for c in adds))
        store.sql_cache[cache_key] = sql
    return sql


async def _run(conn: AsyncConnection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    for i in range(0, len(rows), BATCH):
        await conn.exec_driver_sql(sql, rows[i:i + BATCH])


async def apply(conn: AsyncConnection, store: Store, deltas: Deltas) -> None:
    """Add ``deltas`` to the rollup tables, in the caller's transaction."""
    # One statement per table, rows in key order, tables always in the same order: every
    # transaction takes its row locks in one global order, so concurrent writers (replicas)
    # wait for each other instead of deadlocking.
    counters, errors, sketches, outcomes = deltas.rows()
    prompt_sketches = deltas.prompt_sketch_rows()
    if counters:
        await _run(conn, _upsert_sql(store, rollups, KEY, COUNTERS), counters)
    if errors:
        await _run(conn, _upsert_sql(store, rollup_errors, (*KEY, "error_type"), ("count",)),
                   errors)
    if sketches:
        await _run(conn, _upsert_sql(store, rollup_sketches, (*KEY, "metric", "idx"),
                                     ("count",)), sketches)
    if prompt_sketches:
        await _run(conn, _upsert_sql(store, rollup_prompt_sketches,
                                     (*PROMPT_KEY, "metric", "idx"), ("count",)),
                   prompt_sketches)
    if outcomes:
        await _run(conn, _upsert_sql(store, rollup_outcomes,
                                     ("granularity", "bucket", "feature", "name"),
                                     ("events", "value")), outcomes)


def trace_deltas(rows: Iterable[dict[str, Any]]) -> Deltas:
    d = Deltas()
    for row in rows:
        d.add_trace(row)
    return d


# --- rebuild ---------------------------------------------------------------------------------

ROLLUP_TABLES = (rollups, rollup_errors, rollup_sketches, rollup_prompt_sketches)


async def rebuild(store: Store, since: float, until: float | None = None,
                  page: int = 5000) -> dict[str, int]:
    """Recompute the rollups of whole days from ``since`` (rounded down to a UTC day) to
    ``until`` (default: now and beyond) from the raw traces, feedback and outcomes.

    Runs in one transaction: readers see the old rollups until it commits. Returns how
    many traces, feedback items and outcomes were rolled up."""
    start = bucket(since, "d")
    end = None if until is None else bucket(until, "d") + GRANULARITIES["d"]
    counts = {"traces": 0, "feedback": 0, "outcomes": 0}
    async with store.begin() as conn:
        for table in (*ROLLUP_TABLES, rollup_outcomes):
            cond = table.c.bucket >= start
            if end is not None:
                cond = sa.and_(cond, table.c.bucket < end)
            await conn.execute(table.delete().where(cond))
        cols = [traces.c[n] for n in (
            "id", "start_time", "feature", "team", "model_requested", "prompt_name",
            "prompt_version", "status", "error_type", "input_tokens", "output_tokens",
            "cached_tokens", "reasoning_tokens", "cost_usd", "cache_hit", "cost_saved_usd",
            "latency_ms", "ttft_ms", "attempts", "attempt_log", "guard")]
        after: tuple[float, str] = (start, "")
        while True:
            q = sa.select(*cols).where(
                sa.or_(traces.c.start_time > after[0],
                       sa.and_(traces.c.start_time == after[0], traces.c.id > after[1])))
            if end is not None:
                q = q.where(traces.c.start_time < end)
            q = q.order_by(traces.c.start_time, traces.c.id).limit(page)
            got = [dict(r._mapping) for r in (await conn.execute(q)).all()]
            if not got:
                break
            await apply(conn, store, trace_deltas(got))
            counts["traces"] += len(got)
            after = (float(got[-1]["start_time"]), str(got[-1]["id"]))
        for table, name, time_col in ((feedback, "feedback", "trace_time"),
                                      (outcomes, "outcomes", "at")):
            tc, team, ident = table.c[time_col], table.c.team, table.c.id
            mark: tuple[float, str, str] = (start, "", "")
            while True:  # keyset pages by (time, team, id): ids are unique per team
                q = sa.select(table).where(sa.or_(
                    tc > mark[0],
                    sa.and_(tc == mark[0], team > mark[1]),
                    sa.and_(tc == mark[0], team == mark[1], ident > mark[2])))
                if end is not None:
                    q = q.where(tc < end)
                got = [dict(r._mapping) for r in (await conn.execute(
                    q.order_by(tc, team, ident).limit(page))).all()]
                if not got:
                    break
                d = Deltas()
                for row in got:
                    if name == "feedback":
                        d.add_feedback(row)
                    else:
                        d.add_outcome(row)
                await apply(conn, store, d)
                counts[name] += len(got)
                mark = (float(got[-1][time_col]), str(got[-1]["team"]), str(got[-1]["id"]))
    return counts
