"""Reading eval runs case by case: a run's result rows (ordered by case, then repeat) added
up per case, and two runs' cases paired by position or by case id, in bounded memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from keel.store import Store
from keel.store import evals as q

MAX_FAILURES = 3  # failure explanations kept per case
MAX_FAILURE_CHARS = 300
MAX_OUTPUT_CHARS = 1000  # of a case's answer kept for reports


@dataclass
class CaseResult:
    """One case of one run: its executions (repeats) added up."""

    idx: int
    case_id: str
    executions: int = 0
    passed: int = 0
    failed: int = 0
    errored: int = 0
    latency_ms: float = 0.0  # summed over executions
    cost_usd: float = 0.0
    failures: list[str] = field(default_factory=list)  # capped at MAX_FAILURES
    output: str | None = None  # the first failing answer, else the first answer (clipped)
    _failing_output: bool = field(default=False, repr=False)

    @property
    def rate(self) -> float:
        return self.passed / self.executions if self.executions else 0.0

    @property
    def passing(self) -> bool:
        """The majority of its executions passed."""
        return self.passed * 2 > self.executions

    @property
    def status(self) -> str:
        """passed (every execution) | flaky (some) | errored (none, and none failed) |
        failed."""
        if self.executions and self.passed == self.executions:
            return "passed"
        if self.passed:
            return "flaky"
        return "errored" if self.errored and not self.failed else "failed"

    def add(self, row: dict[str, Any]) -> None:
        status = row["status"]
        _count_status(self, status)
        self.latency_ms += float(row["latency_ms"] or 0.0)
        self.cost_usd += float(row["cost_usd"] or 0.0)
        output = row.get("output")
        if status != "passed":
            for why in row_failures(row):
                if len(self.failures) >= MAX_FAILURES:
                    break
                if why not in self.failures:
                    self.failures.append(why)
            if output is not None and not self._failing_output:
                self.output = clip(output, MAX_OUTPUT_CHARS)
                self._failing_output = True
        elif self.output is None and output is not None:
            self.output = clip(output, MAX_OUTPUT_CHARS)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def row_scores(row: dict[str, Any]) -> list[Any]:
    """A result row's stored scores (a list; empty when missing or unreadable)."""
    try:
        scores = orjson.loads(row.get("scores") or "[]")
    except orjson.JSONDecodeError:
        return []
    return scores if isinstance(scores, list) else []


def row_failures(row: dict[str, Any]) -> list[str]:
    """Why a result row did not pass: its failing or errored scorers' explanations, or the
    execution's error."""
    out: list[str] = []
    for s in row_scores(row):
        if not isinstance(s, dict):
            continue
        if s.get("error"):
            out.append(clip(f"{s.get('name')}: error: {s['error']}", MAX_FAILURE_CHARS))
        elif s.get("passed") is False:
            out.append(clip(f"{s.get('name')}: {s.get('explanation') or 'failed'}",
                            MAX_FAILURE_CHARS))
    if not out and row.get("error"):
        out.append(clip(f"error: {row['error']}", MAX_FAILURE_CHARS))
    return out


class SideTally:
    """Counters of one side's results, fed row by row and case by case."""

    def __init__(self) -> None:
        self.executions = self.passed = self.failed = self.errored = self.cached = 0
        self.cost_usd = 0.0
        self.input_tokens = self.output_tokens = 0
        self.scorers: dict[str, list[float]] = {}  # passed, failed, errored, sum, n
        self.cases = self.cases_all_passed = self.flaky = self.errored_cases = 0

    def row(self, row: dict[str, Any]) -> None:
        _count_status(self, row["status"])
        self.cached += bool(row["cached"])
        self.cost_usd += float(row["cost_usd"] or 0.0)
        self.input_tokens += int(row["input_tokens"] or 0)
        self.output_tokens += int(row["output_tokens"] or 0)
        for s in row_scores(row):
            if not isinstance(s, dict) or "name" not in s:
                continue
            acc = self.scorers.setdefault(str(s["name"]), [0, 0, 0, 0.0, 0])
            if s.get("error") is not None:
                acc[2] += 1
                continue
            if s.get("passed") is True:
                acc[0] += 1
            elif s.get("passed") is False:
                acc[1] += 1
            if isinstance(s.get("value"), int | float):
                acc[3] += float(s["value"])
                acc[4] += 1

    def case(self, case: CaseResult) -> None:
        self.cases += 1
        if case.passed == case.executions:
            self.cases_all_passed += 1
        elif case.passed:
            self.flaky += 1
        if case.errored:
            self.errored_cases += 1


async def run_cases(store: Store, run_id: str,
                 on_row: Callable[[dict[str, Any]], None] | None = None,
                 ) -> AsyncIterator[CaseResult]:
    """A run's cases in ``case_idx`` order, each with its repeats added up."""
    cur: CaseResult | None = None
    async for row in q.iter_results(store, run_id):
        if on_row is not None:
            on_row(row)
        done, cur = _next_row(cur, row)
        if done is not None:
            yield done
    if cur is not None:
        yield cur


def cases_from_rows(rows: Iterable[dict[str, Any]]) -> Iterator[CaseResult]:
    """Result rows in (case_idx, repeat) order, as cases."""
    cur: CaseResult | None = None
    for row in rows:
        done, cur = _next_row(cur, row)
        if done is not None:
            yield done
    if cur is not None:
        yield cur


def _next_row(cur: CaseResult | None, row: dict[str, Any]
              ) -> tuple[CaseResult | None, CaseResult]:
    """Add ``row`` to its case: (the case it closes, if it starts a new one; its case)."""
    done = None
    if cur is None or row["case_idx"] != cur.idx:
        done, cur = cur, CaseResult(int(row["case_idx"]), str(row["case_id"]))
    cur.add(row)
    return done, cur


def _count_status(counts: CaseResult | SideTally, status: str) -> None:
    """One more execution, counted by its status (passed, errored, else failed)."""
    counts.executions += 1
    if status == "passed":
        counts.passed += 1
    elif status == "errored":
        counts.errored += 1
    else:
        counts.failed += 1


Pair = tuple[CaseResult | None, CaseResult | None]


async def paired_cases(store: Store, run_a: str, run_b: str, by: str,
                 tally_a: SideTally | None = None, tally_b: SideTally | None = None,
                 notes: dict[str, int] | None = None) -> AsyncIterator[Pair]:
    notes = notes if notes is not None else {}
    on_a = tally_a.row if tally_a is not None else None
    on_b = tally_b.row if tally_b is not None else None

    def seen(tally: SideTally | None, case: CaseResult | None) -> CaseResult | None:
        if tally is not None and case is not None:
            tally.case(case)
        return case

    if by == "case_idx":
        it_a = aiter(run_cases(store, run_a, on_a))
        it_b = aiter(run_cases(store, run_b, on_b))
        a = seen(tally_a, await anext(it_a, None))
        b = seen(tally_b, await anext(it_b, None))
        while a is not None or b is not None:
            if b is None or (a is not None and a.idx < b.idx):
                yield a, None
                a = seen(tally_a, await anext(it_a, None))
            elif a is None or b.idx < a.idx:
                yield None, b
                b = seen(tally_b, await anext(it_b, None))
            else:
                if a.case_id != b.case_id:
                    notes["id_mismatch"] = notes.get("id_mismatch", 0) + 1
                yield a, b
                a = seen(tally_a, await anext(it_a, None))
                b = seen(tally_b, await anext(it_b, None))
        return
    # by case_id: the baseline's per-case counts in memory, the candidate streamed
    base: dict[str, tuple[int, int, int, int, int]] = {}
    dupes: set[str] = set()  # ids the baseline holds more than once: compared with nothing
    async for a in run_cases(store, run_a, on_a):
        seen(tally_a, a)
        if a.case_id in base:
            dupes.add(a.case_id)
            yield a, None
        else:
            base[a.case_id] = (a.idx, a.executions, a.passed, a.failed, a.errored)
    notes["duplicate_ids"] = len(dupes)
    async for b in run_cases(store, run_b, on_b):
        seen(tally_b, b)
        found = base.pop(b.case_id, None) if b.case_id not in dupes else None
        if found is None:
            yield None, b
            continue
        idx, executions, passed, failed, errored = found
        yield CaseResult(idx, b.case_id, executions, passed, failed, errored), b
    for case_id, (idx, executions, passed, failed, errored) in base.items():
        yield CaseResult(idx, case_id, executions, passed, failed, errored), None
