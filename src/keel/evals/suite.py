"""Eval suite files: which cases, against which targets, scored how, judged by what rule.

::

    name: support-reply                   # default: the file's stem
    dataset: datasets/support.jsonl       # a file (relative to the suite) or a stored
                                          #   dataset name / name@version
    targets:                              # prompt@label, prompt@version, or a mapping
      - support-reply@candidate
      - {prompt: support-reply@production, model: gpt-4o, params: {temperature: 0}}
      - {model: gpt-4o-mini}              # cases carry their own messages
    scorers:
      - {type: contains, value: "{{expected}}"}
      - {type: judge, rubric: "Polite and resolves the question", threshold: 0.7, model: gpt-4o}
    repeats: 1
    concurrency: 8
    threshold: {pass_rate: 0.9}
    gate: {baseline: production, alpha: 0.05, min_effect: 0.02}

The file is validated as a whole before anything runs; a problem is reported as
``FILE: key.path: what is wrong; how to fix it``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keel.config import validation_message
from keel.errors import KeelError
from keel.evals.scorers import Scorer, ScorerConfigError, build_scorer

DATASET_SUFFIXES = (".jsonl", ".csv", ".yaml", ".yml")


class SuiteError(KeelError):
    """A suite that cannot run: the message names the file, the key and the fix."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_suite"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Strict):
    prompt: str | None = Field(None, description="name, name@version or name@label")
    model: str | None = Field(None, max_length=256,
                              description="Model (or route) to call; overrides the prompt "
                                          "version's model.")
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(None, description="Label in reports.")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.prompt and self.model:
            return f"{self.prompt} ({self.model})"
        return self.prompt or self.model or "?"


class ThresholdSpec(_Strict):
    pass_rate: float | None = Field(None, ge=0, le=1, description="Share of cases passing.")
    scorers: dict[str, float] = Field(default_factory=dict,
                                      description="Per scorer name: minimum pass rate.")
    max_cost_usd: float | None = Field(None, ge=0, description="Ceiling on the run's cost.")
    p95_latency_ms: float | None = Field(None, gt=0)
    max_error_rate: float = Field(0.1, ge=0, le=1, description=(
        "Beyond this share of errored cases the run cannot be judged (exit 2)."))


class GateSpec(_Strict):
    baseline: str | TargetSpec | None = Field(
        None, description="A label of the candidate's prompt, a prompt ref, or a target.")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Significance of the paired test.")
    min_effect: float = Field(0.02, ge=0, le=1,
                              description="Smallest pass-rate drop that counts.")


class SuiteSpec(_Strict):
    name: str | None = Field(None, min_length=1, max_length=128)
    description: str | None = None
    dataset: str
    targets: list[str | TargetSpec] = Field(min_length=1)
    scorers: list[dict[str, Any]] = Field(min_length=1)
    repeats: int = Field(1, ge=1, le=100)
    concurrency: int = Field(8, ge=1, le=512)
    retries: int = Field(2, ge=0, le=10, description="Retries of a transient provider error.")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Request params for every target.")
    feature: str = Field("eval", min_length=1, max_length=128,
                         description="Feature the eval traffic is attributed to.")
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)
    gate: GateSpec = Field(default_factory=GateSpec)

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str | TargetSpec]) -> list[str | TargetSpec]:
        for t in v:
            if isinstance(t, TargetSpec) and not (t.prompt or t.model):
                raise ValueError("a target needs prompt: and/or model:, e.g. "
                                 "{prompt: support-reply@candidate} or {model: gpt-4o-mini}")
            if isinstance(t, str) and not t.strip():
                raise ValueError("a target string is a prompt reference, e.g. name@production")
        return v


@dataclass
class Suite:
    """A validated suite, its scorers built."""

    spec: SuiteSpec
    name: str
    path: Path | None
    targets: list[TargetSpec]
    scorers: list[Scorer]

    @property
    def dataset_file(self) -> Path | None:
        """The dataset as a file to import, or None when it names a stored dataset."""
        ref = self.spec.dataset
        base = self.path.parent if self.path is not None else Path.cwd()
        candidate = (base / ref) if not Path(ref).is_absolute() else Path(ref)
        if ref.lower().endswith(DATASET_SUFFIXES) or candidate.exists():
            return candidate
        return None

    def with_targets(self, targets: list[TargetSpec]) -> Suite:
        return Suite(self.spec, self.name, self.path, targets, self.scorers)

    def config_record(self) -> dict[str, Any]:
        """What a run records of its suite: enough to know exactly how it was judged."""
        return self.spec.model_dump(mode="json", exclude={"targets"})


def load_suite(path: Path) -> Suite:
    if not path.exists():
        raise SuiteError(f"{path}: suite file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, OSError) as exc:
        raise SuiteError(f"{path}: cannot read the suite file: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SuiteError(f"{path}: not valid YAML{where}: "
                         f"{getattr(exc, 'problem', exc)}") from None
    return parse_suite(data, path)


def parse_suite(data: Any, path: Path | None) -> Suite:
    where = str(path) if path is not None else "suite"
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: a suite is a mapping with dataset:, targets: and scorers:")
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(validation_message(exc, where, SuiteSpec)) from None
    scorers: list[Scorer] = []
    names: set[str] = set()
    for i, cfg in enumerate(spec.scorers):
        try:
            scorer = build_scorer(cfg, f"scorers[{i}]")
        except ScorerConfigError as exc:
            raise SuiteError(f"{where}: {exc.message}") from None
        if scorer.name in names:
            raise SuiteError(f"{where}: scorers[{i}]: two scorers are named '{scorer.name}'; "
                             "give one a distinct name: (reports and thresholds use it)")
        names.add(scorer.name)
        scorers.append(scorer)
    unknown = sorted(set(spec.threshold.scorers) - names)
    if unknown:
        raise SuiteError(f"{where}: threshold.scorers.{unknown[0]}: no scorer has that name; "
                         f"scorers: {', '.join(sorted(names))}")
    targets = [TargetSpec(prompt=t) if isinstance(t, str) else t for t in spec.targets]
    name = spec.name or (path.stem[:128] if path is not None else "suite")
    return Suite(spec, name, path, targets, scorers)
