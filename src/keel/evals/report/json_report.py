"""Eval reports as JSON: a run (its row, pass rates with 95% Wilson intervals and, when
asked, every result) and a comparison with the gate's verdict. A run's report file is
written as its results are read, a chunk at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from keel.evals.compare import Comparison, Rate, Verdict
from keel.evals.report.table import loads
from keel.store import Store
from keel.store import evals as q

JSON_CHUNK = 500  # result rows written to a JSON report at a time

PathLike = str | Path

_RESULT_KEYS = ("case_idx", "repeat", "case_id", "status", "output", "error", "latency_ms",
                "cost_usd", "input_tokens", "output_tokens", "cached", "trace_id")


def _rate_dict(rate: Rate) -> dict[str, Any]:
    return {"rate": rate.rate, "ci95": [rate.lo, rate.hi], "successes": rate.successes,
            "n": rate.n}


def result_json(row: dict[str, Any]) -> dict[str, Any]:
    """One result row for a JSON report (scores parsed)."""
    out = {k: row.get(k) for k in _RESULT_KEYS}
    out["cached"] = bool(out["cached"])
    scores = loads(row.get("scores"))
    out["scores"] = scores if isinstance(scores, list) else []
    return out


def run_report_json(run: dict[str, Any],
                    results: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A run as JSON: its row (config and summary parsed), the overall and per-scorer pass
    rates with 95% Wilson intervals, and, when ``results`` are given, every result row."""
    summary = loads(run.get("summary"))
    record = {k: v for k, v in run.items() if k not in ("config", "summary")}
    record["config"] = loads(run.get("config"))
    executions = int(run.get("executions") or 0)
    scorers = {}
    for name, s in (summary.get("scorers") or {}).items():
        judged = int(s.get("passed", 0)) + int(s.get("failed", 0))
        scorers[name] = {**s, "pass_rate": _rate_dict(Rate.of(int(s.get("passed", 0)), judged))}
    out: dict[str, Any] = {
        "kind": "keel.eval_run",
        "run": record,
        "summary": summary,
        "pass_rate": _rate_dict(Rate.of(int(run.get("passed") or 0), executions)),
        "scorers": scorers,
        "thresholds": summary.get("thresholds") or {},
    }
    if results is not None:
        out["results"] = [result_json(r) for r in results]
    return out


def comparison_json(cmp: Comparison, verdict: Verdict | None = None) -> dict[str, Any]:
    """A comparison (and the gate's verdict on it) as JSON."""
    out: dict[str, Any] = {"kind": "keel.eval_comparison"}
    if verdict is not None:
        out["verdict"] = verdict.to_dict()
    out["comparison"] = cmp.to_dict()
    return out


def _open(path: PathLike) -> IO[bytes]:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p.open("wb")


async def write_run_json(store: Store, run: dict[str, Any], path: PathLike) -> None:
    """The run's JSON report, results streamed into the file a chunk at a time."""
    head = orjson.dumps(run_report_json(run))
    fh = await asyncio.to_thread(_open, path)
    try:
        await asyncio.to_thread(fh.write, head[:-1] + b',"results":[')
        chunk: list[bytes] = []
        first = True
        async for row in q.iter_results(store, run["id"]):
            chunk.append(orjson.dumps(result_json(row)))
            if len(chunk) >= JSON_CHUNK:
                await asyncio.to_thread(fh.write, (b"" if first else b",") + b",".join(chunk))
                first = False
                chunk = []
        if chunk:
            await asyncio.to_thread(fh.write, (b"" if first else b",") + b",".join(chunk))
        await asyncio.to_thread(fh.write, b"]}")
    finally:
        await asyncio.to_thread(fh.close)
