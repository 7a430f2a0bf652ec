"""What every report is built from: a run's stored cases, and the bounded table of them a
report lists (non-passing cases first), with the small readers the formats share."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import orjson

from keel.evals.cases import CaseResult
from keel.store import Store
from keel.store import evals as q

MAX_HTML_CASES = 2000
MAX_JUNIT_CASES = 5000

_STATUS_ORDER = {"failed": 0, "errored": 1, "flaky": 2, "passed": 3}


def loads(raw: str | None) -> Any:
    """A stored JSON column, parsed; ``{}`` when it is empty or not JSON."""
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}


def when(ts: float | None) -> str:
    """A UNIX time as a UTC date and time, ``-`` for none."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def stored_cases(store: Store, run_id: str) -> AsyncIterator[CaseResult]:
    """A stored run's cases in dataset order, each with all its executions."""
    cur: CaseResult | None = None
    async for row in q.iter_results(store, run_id):
        if cur is None or row["case_idx"] != cur.idx:
            if cur is not None:
                yield cur
            cur = CaseResult(int(row["case_idx"]), str(row["case_id"]))
        cur.add(row)
    if cur is not None:
        yield cur


class CaseTable:
    """The cases a report lists: at most ``cap``, failed first, then errored, flaky and
    passed (each kind in dataset order), with counts of every case seen. Holds at most
    ``cap`` cases whatever the number added."""

    def __init__(self, cap: int = MAX_HTML_CASES) -> None:
        self.cap = cap
        self.kept: dict[str, list[tuple[CaseResult | None, CaseResult]]] = {
            k: [] for k in _STATUS_ORDER}
        self.counts: dict[str, int] = dict.fromkeys(_STATUS_ORDER, 0)
        self.total = 0

    def add(self, case: CaseResult, baseline: CaseResult | None = None) -> None:
        self.total += 1
        status = case.status
        self.counts[status] += 1
        room = self.cap
        for kind in _STATUS_ORDER:  # what kinds listed before this one leave
            if kind == status:
                break
            room -= len(self.kept[kind])
        if room <= len(self.kept[status]):
            return
        self.kept[status].append((baseline, case))
        left = self.cap
        for kind in _STATUS_ORDER:  # drop what no longer fits after it
            del self.kept[kind][max(0, left):]
            left -= len(self.kept[kind])

    def pairs(self, limit: int | None = None) -> list[tuple[CaseResult | None, CaseResult]]:
        limit = self.cap if limit is None else min(limit, self.cap)
        out: list[tuple[CaseResult | None, CaseResult]] = []
        for status in _STATUS_ORDER:
            out += self.kept[status][:limit - len(out)]
        return out

    def rows(self, limit: int | None = None) -> list[CaseResult]:
        return [case for _, case in self.pairs(limit)]

    def hidden(self, limit: int | None = None) -> int:
        """Cases not listed when ``limit`` (default: the cap) are."""
        limit = self.cap if limit is None else min(limit, self.cap)
        return self.total - min(self.total, limit)
