"""What a run is made of: its targets (each renders a case into the chat body it sends),
the items of work (a case, a repeat, a target), the stored dataset a suite's file becomes
and the commit under test."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import InvalidRequest
from keel.evals.datasets import Case
from keel.evals.suite import TargetSpec
from keel.prompts.registry import PromptVersion
from keel.store import Store
from keel.types import JSON


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
class Item:
    target: Target
    idx: int
    case: Case
    repeat: int
    body: JSON | None = None
    key: str | None = None
    cached: str | None = None
    error: str | None = None



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
