"""Scheduled suites: run named suites daily inside the server; record failures as events.

::

    evals:
      schedule:
        - {suite: evals/support.yaml, at: "03:00", baseline: production}

Each entry runs once per UTC day, at or after ``at`` (a server started later that day
catches up at once). With several replicas, exactly one runs it: the (suite, day) slot is
claimed with an insert the database allows only once. With a ``baseline`` (or the suite's
``gate.baseline``) the run is a gate; otherwise the suite's own thresholds judge it. A run
that regresses or breaks a threshold is recorded as a ``regression`` event; one that
cannot run or be judged as an ``error`` event (``GET /api/evals/events``,
``keel eval events``), for alerting to pick up.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from keel.config import EvalsConfig, ScheduledSuite
from keel.errors import KeelError
from keel.evals.gate import run_gate, thresholds_code
from keel.evals.runner.pipeline import Runner
from keel.evals.suite import load_suite
from keel.gateway.calls import ModelCalls
from keel.prompts.registry import PromptRegistry
from keel.store import Store
from keel.store import evals as q

log = logging.getLogger("keel.evals")


def claim_key(entry: ScheduledSuite) -> str:
    """What a claim is for: the entry (file, time and baseline), hashed to a fixed length,
    so two entries for one file each run."""
    raw = f"{entry.suite}|{entry.at}|{entry.baseline or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32] + ":" + Path(entry.suite).name[:200]


def due_slot(at: str, now: float) -> str | None:
    """The UTC date whose run is due at ``now`` (today's, once ``at`` has passed)."""
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    hh, mm = (int(x) for x in at.split(":"))
    if (when.hour, when.minute) < (hh, mm):
        return None
    return when.date().isoformat()


class EvalScheduler:
    """Runs ``config.schedule``; ``calls_for(feature)`` is the gateway a suite's model calls
    go through, as that feature; a suite's relative path is read from ``base_dir``."""

    def __init__(self, store: Store, prompts: PromptRegistry,
                 calls_for: Callable[[str], ModelCalls], config: EvalsConfig,
                 base_dir: Path) -> None:
        self.store = store
        self.prompts = prompts
        self.calls_for = calls_for
        self.config = config
        self.base_dir = base_dir
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.config.schedule:
            self._task = asyncio.create_task(self._loop(), name="keel-eval-schedule")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick(time.time())
            except Exception:
                log.exception("checking the eval schedule failed; will try again")
            await asyncio.sleep(self.config.check_interval_s)

    async def tick(self, now: float) -> list[dict[str, Any]]:
        """Run every entry that is due and not yet claimed; returns what ran."""
        ran = []
        for entry in self.config.schedule:
            slot = due_slot(entry.at, now)
            if slot is None:
                continue
            if not await q.claim_slot(self.store, claim_key(entry), slot, self.instance):
                continue
            ran.append(await self.run_entry(entry, slot))
        return ran

    async def run_entry(self, entry: ScheduledSuite, slot: str) -> dict[str, Any]:
        """Run one scheduled suite; a failure becomes an event. Never raises."""
        path = Path(entry.suite)
        if not path.is_absolute():
            path = self.base_dir / path
        suite_name = entry.suite
        run_id: str | None = None
        detail: dict[str, Any] = {"slot": slot, "suite_file": str(path)}
        try:
            suite = load_suite(path)
            suite_name = suite.name
            runner = Runner(self.store, self.prompts, self.calls_for(suite.spec.feature))
            baseline = entry.baseline or suite.spec.gate.baseline
            if baseline is not None:
                outcome = await run_gate(runner, suite, baseline)
                code, run_id = outcome.verdict.code, outcome.candidate["id"]
                detail.update(baseline_run=outcome.baseline["id"],
                              reasons=outcome.verdict.reasons)
            else:
                runs = await runner.run(suite)
                code, run_id = thresholds_code(runs), runs[0]["id"]
                detail["runs"] = [r["id"] for r in runs]
                detail["reasons"] = [f for r in runs for f in (orjson.loads(
                    r["summary"] or "{}").get("thresholds") or {}).get("failures", [])]
        except KeelError as exc:
            code, detail["reasons"] = 2, [exc.message]
        except asyncio.CancelledError:  # a shutdown mid-run: the day's run is lost; say so
            detail["reasons"] = ["the server stopped while the suite ran; it runs again at "
                                 "the next scheduled time"]
            with contextlib.suppress(Exception):
                await q.add_event(self.store, "error", suite_name, run_id,
                                  orjson.dumps(detail).decode())
            raise
        except Exception as exc:
            log.exception("scheduled suite %s failed", entry.suite)
            code, detail["reasons"] = 2, [f"{type(exc).__name__}: {exc}"]
        if code:
            kind = "regression" if code == 1 else "error"
            await q.add_event(self.store, kind, suite_name, run_id,
                              orjson.dumps(detail).decode())
            log.warning("scheduled suite %s: %s: %s", suite_name, kind,
                        "; ".join(detail.get("reasons") or []))
        return {"suite": suite_name, "slot": slot, "code": code, "run_id": run_id, **detail}
