"""The release gate: run a candidate and its baseline side by side, then judge.

The suite's one target is the candidate. The baseline is, in order of precedence, the
``--baseline`` given on the command line or the suite's ``gate.baseline``:

- a label (``production``): the candidate's prompt at that label;
- a prompt reference (``support-reply@7``);
- a target mapping (``{prompt: ..., model: ...}``), e.g. to gate a model swap.

A label or reference baseline calls the model its prompt version names (falling back to
the model the candidate calls when the version names none) with the suite's params (not
the candidate target's own params, which are part of the change under test), so a prompt
edit, a param change and a model change are each measured against what runs today. Both
sides run in one pass over the dataset (one run each, sharing a group id); the verdict
comes from :func:`keel.evals.compare.gate_verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from keel.errors import NotFound
from keel.evals.compare import Comparison, Verdict, compare_runs, gate_verdict
from keel.evals.runner.pipeline import Runner
from keel.evals.suite import Suite, SuiteError, TargetSpec
from keel.prompts.registry import split_ref


@dataclass
class GateOutcome:
    candidate: dict[str, Any]
    baseline: dict[str, Any]
    comparison: Comparison
    verdict: Verdict
    report_error: str | None = None


def baseline_target(suite: Suite, runner: Runner, baseline: str | TargetSpec | None,
                    ) -> TargetSpec:
    where = f"{suite.path or 'suite'}"
    if len(suite.targets) != 1:
        raise SuiteError(f"{where}: targets: a gate compares one candidate with its baseline; "
                         f"this suite has {len(suite.targets)} targets (keep one, or run "
                         "`keel eval run` and `keel eval compare`)")
    candidate = suite.targets[0]
    if baseline is None:
        raise SuiteError(f"{where}: no baseline; pass --baseline LABEL (e.g. production) or "
                         "set gate.baseline in the suite")
    if isinstance(baseline, TargetSpec):
        return baseline
    if "@" in baseline:
        ref = baseline
    elif candidate.prompt:
        ref = f"{split_ref(candidate.prompt)[0]}@{baseline}"
    else:
        raise SuiteError(f"{where}: baseline '{baseline}' is a label, but the candidate has "
                         "no prompt; give the baseline as a target mapping, e.g. "
                         "gate: {baseline: {model: gpt-4o-mini}}")
    try:
        version = runner.prompts.resolve(ref)
    except NotFound as exc:
        raise SuiteError(f"{where}: baseline: {exc.message}") from None
    model = None
    if not version.spec.model:  # the baseline names no model: the candidate's, as resolved
        model = runner.target(suite, candidate).model
    # the suite's params apply to both sides (Runner.target adds them); the candidate's own
    # target params are part of what is being tested, so the baseline does not inherit them
    return TargetSpec(prompt=ref, model=model, name=f"{ref} (v{version.version}, baseline)")


async def run_gate(runner: Runner, suite: Suite, baseline: str | TargetSpec | None = None,
                   **run_kw: Any) -> GateOutcome:
    base = baseline_target(suite, runner, baseline if baseline is not None
                           else suite.spec.gate.baseline)
    both = suite.with_targets([suite.targets[0], base])
    candidate, base_run = await runner.run(both, roles=["candidate", "baseline"], **run_kw)
    cmp = await compare_runs(runner.store, base_run["id"], candidate["id"])
    thresholds = (orjson.loads(candidate["summary"] or "{}").get("thresholds") or {})
    verdict = gate_verdict(cmp, suite.spec.gate, thresholds)
    return GateOutcome(candidate, base_run, cmp, verdict)


def thresholds_code(runs: list[dict[str, Any]]) -> int:
    """Exit code of plain runs judged by their absolute thresholds: 0 all met, 1 one broken,
    2 a run that cannot be judged (too many errored cases)."""
    verdicts = [orjson.loads(r["summary"] or "{}").get("thresholds") or {} for r in runs]
    if any(not v.get("judgeable", False) for v in verdicts):
        return 2
    return 0 if all(v.get("ok") for v in verdicts) else 1
