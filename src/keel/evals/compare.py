"""Compare two eval runs case by case, and judge a candidate against its baseline.

Run A is the baseline (before), run B the candidate (after). Both runs' results are read
a page at a time and merge-joined on ``case_idx`` (both are ordered by case, then repeat),
so memory holds counters and at most :data:`MAX_EXAMPLES` listed cases per flip direction,
never a run's rows. When the runs used different dataset versions, positions may not name
the same case, so cases are matched by ``case_id`` instead: the baseline is read first into
a map of case id to its per-case counts (a few integers per case: the one structure that
grows with the dataset), then the candidate is streamed against it. Such a comparison says
so in its ``warnings``.

Per case, each side has a pass rate across its repeats (passed / executions). A case with
an errored execution on either side is left out of the paired comparison (an outage or a
rate limit says nothing about quality; the errored counts and ``max_error_rate`` cover
it). A case *passes* on a side when the majority of its executions passed. A case is
*worse* when B's rate is below A's, *better* when above; equal rates are ties. ``pass ->
fail`` flips are cases that pass on A and not on B, ``fail -> pass`` the reverse.

Gate rule: the candidate regressed when its pass rate over the cases both runs share is
lower than the baseline's by more than ``min_effect``, and the one-sided exact sign test
over those cases (those with errored executions left out; cases worse vs cases better,
ties dropped) gives p < ``alpha``. The gate exits 1 when the candidate regressed or broke
one of the suite's absolute thresholds; it exits 2 when either run is not ``done``, either
run is not judgeable (more errored executions than ``max_error_rate`` allows), or the runs
share no case; otherwise 0.

Why this does not fire on noise: a no-op change with flaky outputs makes some cases differ
between the runs, but as often for the better as for the worse. Under that null hypothesis
the number of worse cases among the differing ones is Binomial(n, 1/2), and the exact test
fires with probability at most ``alpha`` whatever n is; ``min_effect`` further ignores
significant but negligible drops on very large datasets. With one repeat the sign test is
the exact McNemar test on the pass/fail table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from keel.errors import NotFound
from keel.evals.cases import Pair, SideTally, paired_cases
from keel.evals.stats import sign_test_p, wilson
from keel.evals.suite import GateSpec
from keel.store import Store
from keel.store import evals as q

MAX_EXAMPLES = 50  # listed cases per flip direction
_EPS = 1e-12

GATE_RULE = "Gate rule: " + " ".join(  # the docstring's paragraph, as one line of text
    (__doc__ or "").split("Gate rule:", 1)[1].split("\n\n", 1)[0].replace("``", "").split())


# --- the comparison -------------------------------------------------------------------------

@dataclass
class Rate:
    """A proportion with its 95% Wilson interval (``rate`` is None when ``n`` is 0)."""

    successes: int
    n: int
    rate: float | None
    lo: float
    hi: float

    @classmethod
    def of(cls, successes: int, n: int) -> Rate:
        lo, hi = wilson(successes, n)
        return cls(successes, n, successes / n if n else None, lo, hi)


@dataclass
class ScorerStats:
    passed: int
    failed: int
    errored: int
    pass_rate: Rate  # passed / (passed + failed); errored scores are not judged
    mean: float | None


@dataclass
class Side:
    """One run of the comparison: its row's facts and what its results add up to."""

    run_id: str
    suite: str
    target: str
    role: str | None
    status: str
    error: str | None
    dataset_name: str
    dataset_version: int
    git_commit: str | None
    started_at: float
    finished_at: float | None
    repeats: int | None
    cases: int
    executions: int
    passed: int
    failed: int
    errored: int
    cached: int
    pass_rate: Rate  # over executions
    scorers: dict[str, ScorerStats]
    cases_all_passed: int
    flaky_cases: int  # passed some repeats, not all
    errored_cases: int  # at least one errored execution
    cost_usd: float  # spent by the run
    full_cost_usd: float  # what its answers cost when made (cached ones included)
    input_tokens: int
    output_tokens: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    thresholds: dict[str, Any]  # the run's own {ok, judgeable, failures}

    @property
    def dataset(self) -> str:
        return f"{self.dataset_name}@{self.dataset_version}"

    @property
    def judgeable(self) -> bool:
        return bool(self.thresholds.get("judgeable", False))


@dataclass
class Flip:
    case_id: str
    case_idx: int  # the candidate's position
    a_rate: float
    b_rate: float
    a_failures: list[str]  # baseline's failure explanations (empty when matched by id)
    b_failures: list[str]  # candidate's failure explanations
    b_output: str | None


@dataclass
class Flips:
    count: int = 0
    examples: list[Flip] = field(default_factory=list)  # the first MAX_EXAMPLES

    def add(self, flip: Flip) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(flip)


@dataclass
class Delta:
    a: float | None
    b: float | None
    delta: float | None  # b - a
    relative: float | None  # (b - a) / a

    @classmethod
    def of(cls, a: float | None, b: float | None) -> Delta:
        if a is None or b is None:
            return cls(a, b, None, None)
        return cls(a, b, b - a, (b - a) / a if a else None)


@dataclass
class Comparison:
    a: Side  # baseline
    b: Side  # candidate
    matched_by: str  # case_idx | case_id
    cases_compared: int
    only_in_a: int
    only_in_b: int
    a_pass_rate: float | None  # mean per-case pass rate over the compared cases
    b_pass_rate: float | None
    effect: float | None  # b_pass_rate - a_pass_rate
    worse: int
    better: int
    ties: int
    p_worse: float  # one-sided sign test, "B is worse"
    p_better: float  # one-sided sign test, "B is better"
    pass_to_fail: Flips
    fail_to_pass: Flips
    deltas: dict[str, Delta]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["a"]["dataset"] = self.a.dataset
        d["b"]["dataset"] = self.b.dataset
        return d


@dataclass
class Verdict:
    code: int  # 0 passed, 1 regression or threshold broken, 2 cannot judge
    reasons: list[str]
    regression: bool

    @property
    def result(self) -> str:
        return {0: "passed", 1: "failed"}.get(self.code, "error")

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "result": self.result, "regression": self.regression,
                "reasons": list(self.reasons)}


async def case_pairs(store: Store, cmp: Comparison) -> AsyncIterator[Pair]:
    """The compared runs' cases again, paired as :func:`compare_runs` paired them:
    ``(baseline case, candidate case)``, either None when only one run has the case."""
    async for pair in paired_cases(store, cmp.a.run_id, cmp.b.run_id, cmp.matched_by):
        yield pair


def _config(run: dict[str, Any]) -> dict[str, Any]:
    try:
        cfg = orjson.loads(run.get("config") or "{}")
    except orjson.JSONDecodeError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    try:
        s = orjson.loads(run.get("summary") or "{}")
    except orjson.JSONDecodeError:
        return {}
    return s if isinstance(s, dict) else {}


async def _side(store: Store, run: dict[str, Any], t: SideTally) -> Side:
    summary = _summary(run)
    p50, p95 = run.get("latency_p50_ms"), run.get("latency_p95_ms")
    if p50 is None and t.executions:
        pct = await q.latency_percentiles(store, run["id"], (0.5, 0.95))
        p50, p95 = pct[0.5], pct[0.95]
    scorers = {}
    for name, (p, f, e, total, n) in t.scorers.items():
        scorers[name] = ScorerStats(int(p), int(f), int(e), Rate.of(int(p), int(p + f)),
                                    total / n if n else None)
    repeats = _config(run).get("repeats")
    return Side(
        run_id=run["id"], suite=run["suite"], target=run["target"], role=run.get("role"),
        status=run["status"], error=run.get("error"), dataset_name=run["dataset_name"],
        dataset_version=int(run["dataset_version"]), git_commit=run.get("git_commit"),
        started_at=float(run["started_at"]), finished_at=run.get("finished_at"),
        repeats=int(repeats) if isinstance(repeats, int) else None, cases=t.cases,
        executions=t.executions, passed=t.passed, failed=t.failed, errored=t.errored,
        cached=t.cached, pass_rate=Rate.of(t.passed, t.executions), scorers=scorers,
        cases_all_passed=t.cases_all_passed, flaky_cases=t.flaky,
        errored_cases=t.errored_cases, cost_usd=float(run.get("cost_usd") or 0.0),
        full_cost_usd=float(summary.get("full_cost_usd", t.cost_usd)),
        input_tokens=t.input_tokens, output_tokens=t.output_tokens,
        latency_p50_ms=p50, latency_p95_ms=p95,
        thresholds=dict(summary.get("thresholds") or {}))


async def compare_runs(store: Store, run_a_id: str, run_b_id: str) -> Comparison:
    """Compare baseline run A with candidate run B (see the module docstring)."""
    run_a = await q.get_run(store, run_a_id)
    run_b = await q.get_run(store, run_b_id)
    for ref, run in ((run_a_id, run_a), (run_b_id, run_b)):
        if run is None:
            raise NotFound(f"no eval run '{ref}'; `keel eval runs` lists them")
    assert run_a is not None and run_b is not None
    warnings: list[str] = []
    same_data = (run_a["dataset_name"], run_a["dataset_version"]) == \
        (run_b["dataset_name"], run_b["dataset_version"])
    by = "case_idx" if same_data else "case_id"
    if not same_data:
        warnings.append(
            f"the runs used different datasets (A {run_a['dataset_name']}@"
            f"{run_a['dataset_version']}, B {run_b['dataset_name']}@{run_b['dataset_version']});"
            " cases are matched by case id (a case without an id by its position), and only "
            "cases in both runs are compared")
    tally_a, tally_b = SideTally(), SideTally()
    notes: dict[str, int] = {}
    compared = only_a = only_b = worse = better = ties = excluded = 0
    sum_a = sum_b = 0.0
    p2f, f2p = Flips(), Flips()
    async for a, b in paired_cases(store, run_a_id, run_b_id, by, tally_a, tally_b, notes):
        if b is None:
            only_a += 1
            continue
        if a is None:
            only_b += 1
            continue
        if a.errored or b.errored:
            # an infrastructure failure says nothing about quality: out of the paired test
            excluded += 1
            continue
        compared += 1
        sum_a += a.rate
        sum_b += b.rate
        if b.rate < a.rate:
            worse += 1
        elif b.rate > a.rate:
            better += 1
        else:
            ties += 1
        if a.passing != b.passing:
            flip = Flip(b.case_id, b.idx, a.rate, b.rate, list(a.failures), list(b.failures),
                        b.output)
            (p2f if a.passing else f2p).add(flip)
    side_a = await _side(store, run_a, tally_a)
    side_b = await _side(store, run_b, tally_b)

    if excluded:
        warnings.append(f"{excluded} case(s) with an errored execution on either side are "
                        "left out of the paired comparison (see the errored counts)")
    if only_a:
        warnings.append(f"{only_a} case(s) of the baseline are not in the candidate run; "
                        "not compared")
    if only_b:
        warnings.append(f"{only_b} case(s) of the candidate are not in the baseline run; "
                        "not compared")
    if notes.get("duplicate_ids"):
        warnings.append(f"{notes['duplicate_ids']} baseline case id(s) occur more than once; "
                        "those cases are not compared")
    if notes.get("id_mismatch"):
        warnings.append(f"{notes['id_mismatch']} case(s) have different ids at the same "
                        "position although the dataset version is the same")
    for side, label in ((side_a, "baseline"), (side_b, "candidate")):
        if side.status != "done":
            warnings.append(f"the {label} run {side.run_id[:12]} is {side.status}, not done")
    cfg_a, cfg_b = _config(run_a), _config(run_b)
    if cfg_a.get("scorers") != cfg_b.get("scorers"):
        warnings.append("the runs were scored by different scorers; pass rates may not be "
                        "comparable")
    if side_a.repeats != side_b.repeats:
        warnings.append(f"the runs used different repeats (A {side_a.repeats}, "
                        f"B {side_b.repeats})")
    if run_a["suite"] != run_b["suite"]:
        warnings.append(f"the runs belong to different suites ({run_a['suite']}, "
                        f"{run_b['suite']})")

    a_rate = sum_a / compared if compared else None
    b_rate = sum_b / compared if compared else None
    deltas = {
        "pass_rate": Delta.of(side_a.pass_rate.rate, side_b.pass_rate.rate),
        "full_cost_usd": Delta.of(side_a.full_cost_usd, side_b.full_cost_usd),
        "cost_per_execution_usd": Delta.of(
            side_a.full_cost_usd / side_a.executions if side_a.executions else None,
            side_b.full_cost_usd / side_b.executions if side_b.executions else None),
        "input_tokens": Delta.of(side_a.input_tokens, side_b.input_tokens),
        "output_tokens": Delta.of(side_a.output_tokens, side_b.output_tokens),
        "latency_p50_ms": Delta.of(side_a.latency_p50_ms, side_b.latency_p50_ms),
        "latency_p95_ms": Delta.of(side_a.latency_p95_ms, side_b.latency_p95_ms),
        "errored": Delta.of(side_a.errored, side_b.errored),
        "flaky_cases": Delta.of(side_a.flaky_cases, side_b.flaky_cases),
    }
    return Comparison(
        a=side_a, b=side_b, matched_by=by, cases_compared=compared, only_in_a=only_a,
        only_in_b=only_b, a_pass_rate=a_rate, b_pass_rate=b_rate,
        effect=(b_rate - a_rate) if a_rate is not None and b_rate is not None else None,
        worse=worse, better=better, ties=ties, p_worse=sign_test_p(worse, better),
        p_better=sign_test_p(better, worse), pass_to_fail=p2f, fail_to_pass=f2p,
        deltas=deltas, warnings=warnings)


# --- the gate -------------------------------------------------------------------------------

def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def gate_verdict(cmp: Comparison, gate: GateSpec,
                 candidate_thresholds: dict[str, Any]) -> Verdict:
    """Judge candidate B against baseline A by the rule in the module docstring.

    ``candidate_thresholds`` is the ``thresholds`` entry of the candidate run's summary
    (``{ok, judgeable, failures}``)."""
    cannot: list[str] = []
    for side, label in ((cmp.a, "baseline"), (cmp.b, "candidate")):
        if side.status != "done":
            why = f": {side.error}" if side.error else ""
            cannot.append(f"the {label} run {side.run_id[:12]} is {side.status}, "
                          f"not done{why}")
    if cmp.a.status == "done" and not cmp.a.judgeable:
        cannot.append("the baseline run cannot be judged: "
                      + "; ".join(cmp.a.thresholds.get("failures") or ["no threshold verdict"]))
    th = candidate_thresholds or {}
    if cmp.b.status == "done" and not th.get("judgeable", False):
        failures = th.get("failures") or ["no threshold verdict"]
        cannot.append("the candidate run cannot be judged: " + str(failures[0]))
    if cmp.cases_compared == 0 and not cannot:
        cannot.append("the runs share no case; nothing to compare")
    if cannot:
        return Verdict(2, cannot, False)

    assert cmp.a_pass_rate is not None and cmp.b_pass_rate is not None
    drop = cmp.a_pass_rate - cmp.b_pass_rate
    points = f"{round(-drop * 100, 1) + 0.0:+.1f} points"  # + 0.0: never "-0.0"
    test = (f"{cmp.worse} case(s) worse, {cmp.better} better, {cmp.ties} unchanged; "
            f"sign test p = {cmp.p_worse:.4g}")
    rates = f"pass rate {_pct(cmp.a_pass_rate)} -> {_pct(cmp.b_pass_rate)} ({points})"
    significant = cmp.p_worse < gate.alpha
    large = drop > gate.min_effect + _EPS
    regression = significant and large
    reasons: list[str] = []
    if regression:
        reasons.append(f"regression: {rates}, a drop of more than min_effect "
                       f"{gate.min_effect:.1%}; {test} < alpha {gate.alpha:g}")
    failures = [str(f) for f in th.get("failures") or ()]
    broken = not th.get("ok", False)
    if broken:
        reasons += [f"threshold: {f}" for f in failures] or ["threshold: not met"]
    if not regression:
        if large:
            why = f"not significant ({test} >= alpha {gate.alpha:g})"
        elif significant:
            why = f"within min_effect {gate.min_effect:.1%} ({test})"
        else:
            why = test
        reasons.append(f"no regression: {rates}; {why}")
    return Verdict(1 if regression or broken else 0, reasons, regression)
