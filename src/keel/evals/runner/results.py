"""Where a run's results go: the run rows (created when the run starts, finished with its
counters, latency percentiles, summary and thresholds, or marked failed), and the result
rows and new result-cache entries, written together in batches as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson

from keel.evals.runner.replies import reply_to_cache
from keel.evals.runner.tally import Tally, check_thresholds
from keel.evals.runner.targets import Target
from keel.evals.suite import Suite
from keel.gateway.calls import Reply
from keel.store import Store
from keel.store import evals as q

FLUSH_ROWS = 500  # results written per batch
QUANTILES = (0.5, 0.95, 0.99)


class ResultWriter:
    """Result rows and new result-cache entries on their way to the store: kept until
    :data:`FLUSH_ROWS` rows are waiting (or a forced flush), then written in one go."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rows: list[dict[str, Any]] = []
        self.cache_new: list[tuple[str, str]] = []
        self._lock = asyncio.Lock()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def cache(self, key: str, reply: Reply) -> None:
        """Keep ``reply`` under ``key`` in the result cache, with the next batch."""
        self.cache_new.append((key, reply_to_cache(reply)))

    @property
    def full(self) -> bool:
        return len(self.rows) >= FLUSH_ROWS

    async def flush(self, *, force: bool = False, cache: bool = True) -> None:
        """Write the waiting rows (when a batch is full, or ``force``), and the new cache
        entries unless ``cache`` is off."""
        async with self._lock:
            if not force and len(self.rows) < FLUSH_ROWS:
                return
            rows, self.rows = self.rows, []
            new, self.cache_new = self.cache_new, []
            await q.add_results(self.store, rows)
            if cache:
                await q.cache_put(self.store, new)


async def create_runs(store: Store, suite: Suite, targets: list[Target], ds: dict[str, Any],
                      *, group_id: str, commit: str | None, config: str, now: float) -> None:
    """One 'running' run row per target."""
    for t in targets:
        await q.create_run(store, {
            "id": t.run_id, "suite": suite.name, "group_id": group_id, "role": t.role,
            "target": t.label[:512], "prompt_name": t.prompt.name if t.prompt else None,
            "prompt_version": t.prompt.version if t.prompt else None, "model": t.model,
            "dataset_name": ds["name"], "dataset_version": ds["version"],
            "config": config, "git_commit": commit, "status": "running",
            "started_at": now, "cases": ds["cases"]})


async def finish_run(store: Store, suite: Suite, t: Target, tally: Tally) -> dict[str, Any]:
    """Finish a target's run row with its counters, latency percentiles (computed by the
    database), summary and thresholds; returns the finished row."""
    pct = await q.latency_percentiles(store, t.run_id, QUANTILES)
    summary = tally.summary()
    values: dict[str, Any] = {
        "status": "done", "finished_at": time.time(), "executions": tally.executions,
        "passed": tally.passed, "failed": tally.failed, "errored": tally.errored,
        "cached": tally.cached, "cost_usd": tally.cost_usd,
        "input_tokens": tally.input_tokens, "output_tokens": tally.output_tokens,
        "latency_p50_ms": pct[0.5], "latency_p95_ms": pct[0.95],
        "latency_p99_ms": pct[0.99]}
    summary["thresholds"] = check_thresholds(suite, {**values, "summary": summary})
    values["summary"] = orjson.dumps(summary).decode()
    await q.finish_run(store, t.run_id, values)
    run = await q.get_run(store, t.run_id)
    assert run is not None
    return run


async def mark_failed(store: Store, targets: list[Target], done: set[str],
                      exc: BaseException) -> None:
    """Mark every run not in ``done`` failed with ``exc``; a store error here is swallowed,
    so the caller's exception is the one raised."""
    for t in targets:
        if t.run_id in done:
            continue
        with contextlib.suppress(Exception):
            await q.finish_run(store, t.run_id, {
                "status": "failed", "finished_at": time.time(),
                "error": f"{type(exc).__name__}: {exc}"[:2000]})
