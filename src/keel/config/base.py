"""What every section of the YAML config shares: the strict model base (unknown keys are
refused, values frozen) and the one problem type a validator raises to name a key, what is
wrong with it and the fix, which ``validation_messages`` turns into the file's lines."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _KeyProblem(ValueError):
    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.key, self.problem, self.fix = key, problem, fix


class _KeyProblems(ValueError):
    """Several problems found by one validator, each reported on its own."""

    def __init__(self, problems: list[_KeyProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
