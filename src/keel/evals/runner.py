"""The eval runner: every case of a dataset against every target, scored, streamed to the store.

Work flows through a bounded pipeline, so memory does not grow with the dataset: a producer
reads cases a page at a time, renders each target's request and looks the whole page up
in the result cache at once; ``concurrency`` workers call the gateway (with retries on
transient errors) and score; results are written in batches as they arrive. A run keeps
only counters in memory; latency percentiles are computed by the database at the end.

The result cache is keyed on the request that would be sent (model, rendered messages,
params) plus the repeat index: re-running an unchanged suite costs nothing, while the
repeats of one run stay independent samples. Judge calls are cached the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from keel.backoff import Backoff
from keel.errors import (
    InvalidRequest,
    KeelError,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
)
from keel.evals.datasets import Case, Datasets
from keel.evals.scorers import LLMError, Score, ScoreInput
from keel.evals.scorers.support import BaseScorer
from keel.evals.suite import Suite, SuiteError, TargetSpec
from keel.gateway.calls import ModelCalls, Reply
from keel.prompts.registry import PromptRegistry, PromptVersion
from keel.store import Store
from keel.store import evals as q
from keel.text import answer_text
from keel.types import JSON

log = logging.getLogger("keel.evals")

PAGE = 500  # cases read (and cache-checked) at a time
FLUSH_ROWS = 500  # results written per batch
MAX_OUTPUT_CHARS = 20_000  # of an answer kept in a result row
MAX_FLAKY_LISTED = 20
MAX_ERROR_KINDS = 100  # distinct errors a run counts (later new ones are only totalled)
MAX_ERROR_CHARS = 500  # of an error, as counted
MAX_ERRORS_LISTED = 5  # most common errors in a run's summary
TIMES = "\N{MULTIPLICATION SIGN}"  # "most common error (20 times)", with the sign for "times"
QUANTILES = (0.5, 0.95, 0.99)


Progress = Callable[[int, int], None]  # (executions done, executions in total)


@dataclass
class Target:
    spec: TargetSpec
    label: str
    model: str | None
    params: dict[str, Any]
    prompt: PromptVersion | None
    ref: str | None
    run_id: str = ""
    role: str | None = None

    def request(self, case: Case) -> JSON:
        """The chat body this target sends for ``case`` (KeelError when it cannot)."""
        messages: list[JSON] = []
        body: JSON = {}
        if self.prompt is not None:
            spec = self.prompt.spec
            messages = spec.render(case.vars, self.ref or self.prompt.name)
            body.update(spec.params)
            if spec.tools is not None:
                body["tools"] = list(spec.tools)
            if spec.response_format is not None:
                body["response_format"] = spec.response_format
        elif not case.messages:
            raise InvalidRequest(f"target '{self.label}' has no prompt, and the case has no "
                                 "messages; give the target a prompt: or the case messages")
        messages = messages + list(case.messages or [])
        body.update(self.params)
        body["model"] = self.model
        body["messages"] = messages
        return body


@dataclass
class Tally:
    """A run's counters, kept while it runs (bounded: no per-case lists)."""

    executions: int = 0
    passed: int = 0
    failed: int = 0
    errored: int = 0
    cached: int = 0
    cost_usd: float = 0.0  # spent by this run (cached answers cost nothing)
    full_cost_usd: float = 0.0  # what the answers cost when made (comparable across runs)
    scoring_cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    scorers: dict[str, list[float]] = field(default_factory=dict)  # passed, failed, errored,
    #                                                                value sum, values
    open_cases: dict[int, list[int]] = field(default_factory=dict)  # idx -> [passes, done]
    cases: int = 0
    cases_all_passed: int = 0
    flaky: int = 0
    flaky_cases: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # error kind -> executions (bounded)
    errors_uncounted: int = 0  # errored executions whose kind came past MAX_ERROR_KINDS

    def add(self, row: dict[str, Any], scores: list[tuple[str, Score]], repeats: int,
            scoring_cost: float) -> None:
        self.executions += 1
        status = row["status"]
        setattr(self, status, getattr(self, status) + 1)
        if row["cached"]:
            self.cached += 1
        else:
            self.cost_usd += row["cost_usd"]
        self.cost_usd += scoring_cost
        self.scoring_cost_usd += scoring_cost
        self.full_cost_usd += row["cost_usd"]
        self.input_tokens += row["input_tokens"]
        self.output_tokens += row["output_tokens"]
        for name, s in scores:
            acc = self.scorers.setdefault(name, [0, 0, 0, 0.0, 0])
            if s.error is not None:
                acc[2] += 1
                continue
            if s.passed is True:
                acc[0] += 1
            elif s.passed is False:
                acc[1] += 1
            acc[3] += s.value
            acc[4] += 1
        if status == "errored":
            self.count_error(row, scores)
        state = self.open_cases.setdefault(row["case_idx"], [0, 0])
        state[0] += status == "passed"
        state[1] += 1
        if state[1] == repeats:
            del self.open_cases[row["case_idx"]]
            self.cases += 1
            if state[0] == repeats:
                self.cases_all_passed += 1
            elif state[0] > 0:
                self.flaky += 1
                if len(self.flaky_cases) < MAX_FLAKY_LISTED:
                    self.flaky_cases.append({"case": row["case_id"],
                                             "pass_rate": state[0] / repeats})

    def count_error(self, row: dict[str, Any], scores: list[tuple[str, Score]]) -> None:
        """Count an errored execution by what went wrong: the scorers' errors (by kind, so
        a judge's quoted replies do not split them), else the call's or the prompt's."""
        failed = [f"{name}: {s.error_kind or s.error}" for name, s in scores
                  if s.error is not None]
        kind = ("; ".join(failed) if failed else str(row["error"] or "unknown error"))
        kind = kind[:MAX_ERROR_CHARS]
        if kind in self.errors or len(self.errors) < MAX_ERROR_KINDS:
            self.errors[kind] = self.errors.get(kind, 0) + 1
        else:
            self.errors_uncounted += 1

    def error_summary(self) -> tuple[list[dict[str, Any]], str | None]:
        """The most common errors, and one line that says why executions errored."""
        top = sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_ERRORS_LISTED]
        listed = [{"error": kind, "count": count} for kind, count in top]
        if not self.errored or not top:
            return listed, None
        kind, count = top[0]
        head = (f"all {self.executions} executions failed" if self.errored == self.executions
                else f"{self.errored} of {self.executions} executions errored")
        more = len(self.errors) - 1 + (1 if self.errors_uncounted else 0)
        tail = f" (and {more} other error{'s' if more != 1 else ''})" if more else ""
        return listed, f"{head}; most common error ({count}{TIMES}): {kind}{tail}"

    def summary(self) -> dict[str, Any]:
        scorers = {}
        for name, (p, f, e, total, n) in self.scorers.items():
            judged = p + f
            scorers[name] = {"passed": int(p), "failed": int(f), "errored": int(e),
                             "pass_rate": p / judged if judged else None,
                             "mean": total / n if n else None}
        errors, note = self.error_summary()
        return {
            "pass_rate": self.passed / self.executions if self.executions else None,
            "error_rate": self.errored / self.executions if self.executions else None,
            "cases": self.cases, "cases_all_passed": self.cases_all_passed,
            "flaky_cases": self.flaky, "flaky": self.flaky_cases,
            "full_cost_usd": self.full_cost_usd, "scoring_cost_usd": self.scoring_cost_usd,
            "scorers": scorers,
            "errors": errors, "error_note": note,
        }


@dataclass
class Item:
    target: Target
    idx: int
    case: Case
    repeat: int
    body: JSON | None = None
    key: str | None = None
    cached: str | None = None
    error: str | None = None


def request_key(body: JSON, salt: str) -> str:
    """The result-cache key: the request exactly as it would be sent, plus ``salt``."""
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw + b"\0" + salt.encode()).hexdigest()


async def file_dataset_name(store: Store, path: Path) -> str:
    """The stored dataset a suite's file becomes: its stem, unless a dataset of that name
    came from another source (then the stem plus a hash of the path), so a file never adds
    versions to an unrelated, curated dataset."""
    from keel.store import datasets as dq

    latest = await dq.latest_version(store, path.stem)
    if latest is None or latest["source"] == str(path):
        return path.stem
    return f"{path.stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def git_commit(cwd: Path | None) -> str | None:
    """The commit under test: from the CI's environment, else ``git rev-parse HEAD``."""
    for var in ("KEEL_GIT_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"):
        if os.environ.get(var):
            return os.environ[var][:64]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path.cwd(),
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip()[:64] or None


def transient(exc: KeelError) -> bool:
    """Worth retrying: provider trouble and keel's own rate limits, not bad requests or
    exhausted budgets."""
    return isinstance(exc, UpstreamError | RateLimited) and not isinstance(exc, UpstreamRejected)


RETRY = Backoff(base=0.25, cap=8.0)  # 0.25 s doubling, at most 8 s; a Retry-After up to 30 s


def retry_delay(exc: KeelError, attempt: int) -> float:
    after = exc.headers.get("retry-after") or exc.headers.get("Retry-After")
    if after:
        with contextlib.suppress(ValueError):
            return min(30.0, float(after))
    return RETRY.delay(attempt)


class Runner:
    def __init__(self, store: Store, prompts: PromptRegistry, gateway: ModelCalls, *,
                 use_cache: bool = True, progress: Progress | None = None) -> None:
        self.store = store
        self.prompts = prompts
        self.gateway = gateway
        self.use_cache = use_cache
        self.progress = progress
        self._rows: list[dict[str, Any]] = []
        self._cache_new: list[tuple[str, str]] = []
        self._flush_lock = asyncio.Lock()

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
            for t in targets:
                await q.create_run(self.store, {
                    "id": t.run_id, "suite": suite.name, "group_id": group_id, "role": t.role,
                    "target": t.label[:512], "prompt_name": t.prompt.name if t.prompt else None,
                    "prompt_version": t.prompt.version if t.prompt else None, "model": t.model,
                    "dataset_name": ds["name"], "dataset_version": ds["version"],
                    "config": config, "git_commit": commit, "status": "running",
                    "started_at": now, "cases": ds["cases"]})
            await self._pipeline(suite, targets, ds, tallies, total)
            for t in targets:
                finished.append(await self._finish(suite, t, tallies[t.run_id]))
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self._flush(force=True)
            done = {r["id"] for r in finished}
            for t in targets:
                if t.run_id in done:
                    continue
                with contextlib.suppress(Exception):
                    await q.finish_run(self.store, t.run_id, {
                        "status": "failed", "finished_at": time.time(),
                        "error": f"{type(exc).__name__}: {exc}"[:2000]})
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
                self._rows.append(row)
                done += 1
                if self.progress is not None:
                    self.progress(done, total)
                if len(self._rows) >= FLUSH_ROWS:
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
            self._cache_new.append((item.key, reply_to_cache(reply)))
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
        async with self._flush_lock:
            if not force and len(self._rows) < FLUSH_ROWS:
                return
            rows, self._rows = self._rows, []
            new, self._cache_new = self._cache_new, []
            await q.add_results(self.store, rows)
            if self.use_cache:
                await q.cache_put(self.store, new)

    async def _finish(self, suite: Suite, t: Target, tally: Tally) -> dict[str, Any]:
        pct = await q.latency_percentiles(self.store, t.run_id, QUANTILES)
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
        await q.finish_run(self.store, t.run_id, values)
        run = await q.get_run(self.store, t.run_id)
        assert run is not None
        return run


class ScoringLLM:
    """Model calls made by scorers for one case: through the gateway, cached, costed."""

    def __init__(self, runner: Runner, retries: int, run_id: str, repeat: int = 0) -> None:
        self.runner = runner
        self.retries = retries
        self.salt = f"scorer:repeat={repeat}"  # a judge's noise shows across repeats too
        self.tags = {"keel.eval_run": run_id, "keel.purpose": "eval-scorer"}
        self.cost_usd = 0.0

    async def _cached(self, key: str) -> Reply | None:
        if not self.runner.use_cache:
            return None
        found = await q.cache_get(self.runner.store, [key])
        return reply_from_cache(found[key]) if key in found else None

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        key = request_key(body, self.salt)
        reply = await self._cached(key)
        if reply is None:
            reply = await self.runner.call(body, self.retries, self.tags)
            self.cost_usd += reply.cost_usd
            if reply.error is None and reply.body is not None and cacheable(reply.body,
                                                                            judge=True):
                self.runner._cache_new.append((key, reply_to_cache(reply)))
        if reply.error is not None or reply.body is None:
            raise LLMError(reply.error.message if reply.error else "no answer")
        return reply.body

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        body: JSON = {"model": model, "input": texts}
        key = request_key(body, "embed")
        reply = await self._cached(key)
        if reply is None:
            reply = await self.runner.call(body, self.retries, self.tags, embed=True)
            self.cost_usd += reply.cost_usd
            if reply.error is None and reply.body is not None:
                self.runner._cache_new.append((key, reply_to_cache(reply)))
        if reply.error is not None or reply.body is None:
            raise LLMError(reply.error.message if reply.error else "no answer")
        data = sorted(reply.body.get("data") or [], key=lambda d: d.get("index", 0))
        return [list(d["embedding"]) for d in data]


def inline(scorer: Any) -> bool:
    """A scorer that never waits (the deterministic built-ins): awaited in place, since a
    task per scorer per case costs more than the scoring (measured in bench/)."""
    return isinstance(scorer, BaseScorer) and type(scorer).score is BaseScorer.score


async def score_all(scorers: list[Any], inp: ScoreInput) -> list[Score]:
    """Every scorer's score, in order; the ones that wait (model calls) run concurrently."""
    out: list[Score | None] = [None] * len(scorers)
    waiting: list[int] = []
    for i, scorer in enumerate(scorers):
        if inline(scorer):
            out[i] = await safe_score(scorer, inp)
        else:
            waiting.append(i)
    if len(waiting) == 1:
        out[waiting[0]] = await safe_score(scorers[waiting[0]], inp)
    elif waiting:
        done = await asyncio.gather(*(safe_score(scorers[i], inp) for i in waiting))
        for i, score in zip(waiting, done, strict=True):
            out[i] = score
    return [s for s in out if s is not None]


async def safe_score(scorer: Any, inp: ScoreInput) -> Score:
    """A scorer's result; a scorer that raises gives an errored score, never a pass."""
    try:
        result: Awaitable[Score] = scorer.score(inp)
        score = await result
    except LLMError as exc:
        return Score(0.0, None, "", error=f"model call failed: {exc}")
    except Exception as exc:
        return Score(0.0, None, "", error=f"scorer raised {type(exc).__name__}: {exc}")
    if not isinstance(score, Score):
        return Score(0.0, None, "", error=f"scorer returned {type(score).__name__}, not a Score")
    if score.passed is not None and not isinstance(score.passed, bool):
        try:  # e.g. numpy.bool_ from a custom scorer
            return Score(score.value, bool(score.passed), score.explanation, score.error,
                         score.error_kind)
        except Exception:
            return Score(0.0, None, "", error=f"scorer's passed is {score.passed!r}, not a bool")
    return score


def cacheable(body: JSON, *, judge: bool = False) -> bool:
    """Whether an answer may be replayed by later runs: not a content-filter refusal (often
    a one-off), and for a judge not a reply cut off at max_tokens (it holds no verdict)."""
    reasons = {c.get("finish_reason") for c in body.get("choices") or ()}
    return "content_filter" not in reasons and not (judge and "length" in reasons)


def reply_to_cache(reply: Reply) -> str:
    return orjson.dumps({"body": reply.body, "latency_ms": reply.latency_ms,
                         "cost_usd": reply.cost_usd, "input_tokens": reply.input_tokens,
                         "output_tokens": reply.output_tokens, "model": reply.model}).decode()


def reply_from_cache(raw: str) -> Reply:
    d = orjson.loads(raw)
    return Reply(body=d["body"], trace_id="", latency_ms=d["latency_ms"],
                 cost_usd=d["cost_usd"], input_tokens=d["input_tokens"],
                 output_tokens=d["output_tokens"], model=d.get("model"))


def check_thresholds(suite: Suite, run: dict[str, Any]) -> dict[str, Any]:
    """The suite's absolute thresholds against a finished run: ``{ok, judgeable, failures}``.

    ``judgeable`` is false when more cases errored than ``max_error_rate`` allows: such a
    run says nothing about quality (a gate exits 2, not 0 or 1)."""
    th = suite.spec.threshold
    summary = run["summary"]
    failures: list[str] = []
    executions = run["executions"] or 0
    error_rate = (run["errored"] / executions) if executions else 1.0
    judgeable = executions > 0 and error_rate <= th.max_error_rate
    top = (summary.get("errors") or [None])[0]
    common = f"most common error ({top['count']}{TIMES}): {top['error']}" if top else None
    if not judgeable and common and run["errored"] == executions:
        failures.append(f"all {executions} executions failed; {common}")
    elif not judgeable:
        failures.append(f"{run['errored']} of {executions} executions errored "
                        f"({error_rate:.0%} > max_error_rate {th.max_error_rate:.0%})"
                        + (f"; {common}" if common else ""))
    rate = summary.get("pass_rate")
    if th.pass_rate is not None and (rate is None or rate < th.pass_rate):
        failures.append(f"pass rate {_pct(rate)} < threshold {th.pass_rate:.1%}")
    for name, minimum in th.scorers.items():
        got = (summary["scorers"].get(name) or {}).get("pass_rate")
        if got is None or got < minimum:
            failures.append(f"scorer '{name}' pass rate {_pct(got)} < threshold {minimum:.1%}")
    if th.max_cost_usd is not None and summary["full_cost_usd"] > th.max_cost_usd:
        failures.append(f"cost ${summary['full_cost_usd']:.4f} > max_cost_usd "
                        f"${th.max_cost_usd:.4f}")
    p95 = run.get("latency_p95_ms")
    if th.p95_latency_ms is not None and p95 is not None and p95 > th.p95_latency_ms:
        failures.append(f"p95 latency {p95:.0f} ms > {th.p95_latency_ms:.0f} ms")
    return {"ok": not failures, "judgeable": judgeable, "failures": failures}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"
