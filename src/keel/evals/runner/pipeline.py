"""The runner: every case of a dataset against every target, through a bounded pipeline.

A producer reads cases a page at a time, renders each target's request and looks the whole
page up in the result cache at once; ``concurrency`` workers call the gateway (with retries
on transient errors) and score; results go to the :class:`ResultWriter` as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from keel.errors import KeelError, NotFound
from keel.evals.datasets import Case, Datasets
from keel.evals.runner.replies import (
    cacheable,
    reply_from_cache,
    request_key,
    retry_delay,
    transient,
)
from keel.evals.runner.results import ResultWriter, create_runs, finish_run, mark_failed
from keel.evals.runner.scoring import ScoringLLM, score_all
from keel.evals.runner.tally import Tally
from keel.evals.runner.targets import Item, Target, file_dataset_name, git_commit
from keel.evals.scorers import Score, ScoreInput
from keel.evals.suite import Suite, SuiteError, TargetSpec
from keel.gateway.calls import ModelCalls, Reply
from keel.prompts.registry import PromptRegistry, PromptVersion
from keel.store import Store
from keel.store import evals as q
from keel.text import answer_text
from keel.types import JSON

log = logging.getLogger("keel.evals")

PAGE = 500  # cases read (and cache-checked) at a time
MAX_OUTPUT_CHARS = 20_000  # of an answer kept in a result row

Progress = Callable[[int, int], None]  # (executions done, executions in total)


class Runner:
    """Runs suites against the gateway (``gateway``: any :class:`ModelCalls`), storing the
    runs and their results in ``store``; ``use_cache`` off makes every call anew."""

    def __init__(self, store: Store, prompts: PromptRegistry, gateway: ModelCalls, *,
                 use_cache: bool = True, progress: Progress | None = None) -> None:
        self.store = store
        self.prompts = prompts
        self.gateway = gateway
        self.use_cache = use_cache
        self.progress = progress
        self.results = ResultWriter(store)

    # --- set-up ------------------------------------------------------------------------------

    async def dataset(self, suite: Suite, on_error: str = "stop") -> dict[str, Any]:
        """The dataset version the suite runs on; a file is imported (or its identical
        latest version reused), so the run can record exactly which cases it used."""
        datasets = Datasets(self.store)
        path = suite.dataset_file
        if path is not None:
            if not path.exists():
                raise SuiteError(f"{suite.path or 'suite'}: dataset: file '{path}' not found; "
                                 "give a path relative to the suite file, or the name of a "
                                 "stored dataset (keel datasets list)")
            name = await file_dataset_name(self.store, path)
            version, report = await datasets.import_file(name, path, on_error=on_error,
                                                         reuse=True, message="eval suite")
            for line, why in report.skipped:
                log.warning("dataset line %s skipped: %s", line, why)
            return await datasets.resolve(f"{name}@{version}")
        try:
            return await datasets.resolve(suite.spec.dataset)
        except NotFound as exc:
            raise SuiteError(f"{suite.path or 'suite'}: dataset: {exc.message}") from None

    def target(self, suite: Suite, spec: TargetSpec, role: str | None = None) -> Target:
        where = f"{suite.path or 'suite'}: targets"
        prompt: PromptVersion | None = None
        if spec.prompt:
            try:
                prompt = self.prompts.resolve(spec.prompt)
            except NotFound as exc:
                raise SuiteError(f"{where}: {exc.message}") from None
        model = spec.model or (prompt.spec.model if prompt is not None else None)
        if model is None:
            raise SuiteError(f"{where}: prompt '{spec.prompt}' names no model; add model: "
                             "to the target")
        label = spec.name or (f"{prompt.name}@{prompt.version}" if prompt else model)
        if prompt is not None and spec.prompt and "@" in spec.prompt \
                and not spec.prompt.split("@", 1)[1].isdigit():
            label = spec.name or f"{spec.prompt} (v{prompt.version})"
        if spec.model and prompt is not None and not spec.name:
            label += f" on {spec.model}"
        return Target(spec=spec, label=label, model=model,
                      params={**suite.spec.params, **spec.params}, prompt=prompt,
                      ref=spec.prompt, role=role)

    # --- running -----------------------------------------------------------------------------

    async def run(self, suite: Suite, *, roles: list[str | None] | None = None,
                  on_error: str = "stop", group_id: str | None = None,
                  ) -> list[dict[str, Any]]:
        """Run the suite; one stored run per target. Returns the finished run rows."""
        roles = roles or [None] * len(suite.targets)
        targets = [self.target(suite, t, r) for t, r in zip(suite.targets, roles, strict=True)]
        ds = await self.dataset(suite, on_error)
        group_id = group_id or uuid.uuid4().hex
        commit = await asyncio.to_thread(git_commit, suite.path.parent if suite.path else None)
        config = orjson.dumps(suite.config_record()).decode()
        now = time.time()
        for t in targets:
            t.run_id = uuid.uuid4().hex  # random from the start: a short prefix names it
        tallies = {t.run_id: Tally() for t in targets}
        total = ds["cases"] * len(targets) * suite.spec.repeats
        finished: list[dict[str, Any]] = []
        # Everything from the first run row on is inside the try: whatever fails or is
        # cancelled (also while the runs are being finished), no run is left 'running'.
        try:
            await create_runs(self.store, suite, targets, ds, group_id=group_id, commit=commit,
                              config=config, now=now)
            await self._pipeline(suite, targets, ds, tallies, total)
            for t in targets:
                finished.append(await finish_run(self.store, suite, t, tallies[t.run_id]))
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self._flush(force=True)
            await mark_failed(self.store, targets, {r["id"] for r in finished}, exc)
            raise
        return finished

    async def _pipeline(self, suite: Suite, targets: list[Target], ds: dict[str, Any],
                        tallies: dict[str, Tally], total: int) -> None:
        queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=suite.spec.concurrency * 4)
        done = 0

        async def produce() -> None:
            page: list[Item] = []
            async for idx, case in Datasets(self.store).cases(ds["name"], ds["version"]):
                for rep in range(suite.spec.repeats):
                    for t in targets:
                        page.append(self._item(t, idx, case, rep))
                if len(page) >= PAGE:
                    await self._lookup(page, queue)
                    page = []
            await self._lookup(page, queue)
            for _ in range(suite.spec.concurrency):
                await queue.put(None)

        async def work() -> None:
            nonlocal done
            while (item := await queue.get()) is not None:
                row, scores, scoring_cost = await self._execute(suite, item)
                tallies[item.target.run_id].add(row, scores, suite.spec.repeats, scoring_cost)
                self.results.add(row)
                done += 1
                if self.progress is not None:
                    self.progress(done, total)
                if self.results.full:
                    await self._flush()

        tasks = [asyncio.create_task(produce(), name="keel-eval-produce")]
        tasks += [asyncio.create_task(work(), name=f"keel-eval-worker-{i}")
                  for i in range(suite.spec.concurrency)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._flush(force=True)

    def _item(self, target: Target, idx: int, case: Case, repeat: int) -> Item:
        item = Item(target, idx, case, repeat)
        try:
            item.body = target.request(case)
        except KeelError as exc:
            item.error = exc.message
            return item
        item.key = request_key(item.body, f"repeat={repeat}")
        return item

    async def _lookup(self, page: list[Item], queue: asyncio.Queue[Item | None]) -> None:
        if self.use_cache:
            found = await q.cache_get(self.store, [i.key for i in page if i.key])
            for item in page:
                if item.key is not None:
                    item.cached = found.get(item.key)
        for item in page:
            await queue.put(item)

    async def call(self, body: JSON, retries: int, tags: dict[str, str],
                   prompt: tuple[str, int] | None = None, *, embed: bool = False) -> Reply:
        """One gateway call (chat, or embeddings), retried on transient errors with backoff."""
        attempt = 0
        while True:
            reply = await (self.gateway.embed(body, tags=tags) if embed
                           else self.gateway.chat(body, tags=tags, prompt=prompt))
            if reply.error is None or attempt >= retries or not transient(reply.error):
                return reply
            await asyncio.sleep(retry_delay(reply.error, attempt))
            attempt += 1

    async def _execute(self, suite: Suite, item: Item
                       ) -> tuple[dict[str, Any], list[tuple[str, Score]], float]:
        t = item.target
        row: dict[str, Any] = {
            "run_id": t.run_id, "case_idx": item.idx, "repeat": item.repeat,
            "case_id": (item.case.id or str(item.idx))[:256], "status": "errored",
            "output": None, "scores": "[]", "error": item.error, "latency_ms": 0.0,
            "cost_usd": 0.0, "input_tokens": 0, "output_tokens": 0, "cached": False,
            "trace_id": None}
        if item.body is None:
            return row, [], 0.0
        if item.cached is not None:
            reply = reply_from_cache(item.cached)
            row["cached"] = True
        else:
            prompt = (t.prompt.name, t.prompt.version) if t.prompt is not None else None
            reply = await self.call(item.body, suite.spec.retries,
                                    {"keel.eval_run": t.run_id}, prompt)
            row["trace_id"] = reply.trace_id
        row.update(latency_ms=reply.latency_ms, cost_usd=reply.cost_usd,
                   input_tokens=reply.input_tokens, output_tokens=reply.output_tokens)
        if reply.error is not None or reply.body is None:
            row["error"] = reply.error.message if reply.error else "no answer"
            return row, [], 0.0
        if item.key is not None and not row["cached"] and cacheable(reply.body):
            self.results.cache(item.key, reply)
        text = answer_text(reply.body) or ""
        row["output"] = text[:MAX_OUTPUT_CHARS]
        llm = ScoringLLM(self, suite.spec.retries, t.run_id, item.repeat)
        inp = ScoreInput(output_text=text, output=reply.body, expected=item.case.expected,
                         variables=item.case.vars, context=item.case.context,
                         latency_ms=reply.latency_ms, cost_usd=reply.cost_usd, llm=llm,
                         messages=item.body["messages"])
        scores = list(zip([s.name for s in suite.scorers], await score_all(suite.scorers, inp),
                          strict=True))
        row["scores"] = orjson.dumps([
            {"name": name, "value": s.value, "passed": s.passed, "explanation": s.explanation,
             "error": s.error} for name, s in scores]).decode()
        if any(s.error is not None for _, s in scores):
            row["status"] = "errored"
            row["error"] = "; ".join(f"{n}: {s.error}" for n, s in scores if s.error)
        elif any(s.passed is False for _, s in scores):
            row["status"] = "failed"
        else:
            row["status"] = "passed"
        return row, scores, llm.cost_usd

    async def _flush(self, *, force: bool = False) -> None:
        await self.results.flush(force=force, cache=self.use_cache)
