"""A run's counters, kept while it runs (bounded: no per-case lists), the summary stored
with it, and the suite's absolute thresholds checked against the finished run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keel.evals.scorers import Score
from keel.evals.suite import Suite

MAX_FLAKY_LISTED = 20
MAX_ERROR_KINDS = 100  # distinct errors a run counts (later new ones are only totalled)
MAX_ERROR_CHARS = 500  # of an error, as counted
MAX_ERRORS_LISTED = 5  # most common errors in a run's summary
TIMES = "\N{MULTIPLICATION SIGN}"  # "most common error (20 times)", with the sign for "times"


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
