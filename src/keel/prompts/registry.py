"""The prompt registry: immutable versions, movable labels, recorded rollbacks.

A reference is ``name``, ``name@3`` (a version), ``name@production`` (a label) or
``name@latest`` (automatic). The gateway resolves references from an in-memory index —
no database round trip per request — which is reloaded when the registry's version
counter in the store changes (polled, and at once after a change made in this process).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from keel.audit import AuditLog
from keel.errors import InvalidRequest, NotFound
from keel.polling import Poller
from keel.prompts.spec import PromptSpec
from keel.store import Store
from keel.store import prompts as q

log = logging.getLogger("keel.prompts")
LATEST = "latest"


@dataclass(frozen=True, slots=True)
class PromptVersion:
    name: str
    version: int
    spec: PromptSpec
    content_hash: str
    message: str | None
    author: str | None
    created_at: float

    def public(self, labels: list[str]) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "labels": labels,
                "content_hash": self.content_hash, "message": self.message,
                "author": self.author, "created_at": self.created_at,
                "variables": self.spec.variables, **self.spec.to_dict()}


def split_ref(ref: str) -> tuple[str, str]:
    name, _, which = ref.partition("@")
    return name, which or LATEST


class PromptRegistry:
    def __init__(self, store: Store, *, audit: AuditLog | None = None) -> None:
        self.store = store
        self.audit = audit or AuditLog.from_settings(store)  # pushes and label moves
        self._versions: dict[str, dict[int, PromptVersion]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._version: str | None = None
        self._poller = Poller("keel-prompt-refresh", log,
                              "refreshing prompts failed; keeping the prompts in memory")

    # --- index -------------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> None:
        version = await q.registry_version(self.store)
        if not force and version == self._version:
            return
        versions: dict[str, dict[int, PromptVersion]] = {}
        for row in await q.all_versions(self.store):
            spec = PromptSpec.parse(orjson.loads(row["spec"]), f"{row['name']}@{row['version']}")
            versions.setdefault(row["name"], {})[row["version"]] = PromptVersion(
                row["name"], row["version"], spec, row["content_hash"], row["message"],
                row["author"], row["created_at"])
        labels: dict[str, dict[str, int]] = {}
        for row in await q.all_labels(self.store):
            labels.setdefault(row["name"], {})[row["label"]] = row["version"]
        self._versions, self._labels, self._version = versions, labels, version

    async def start(self, interval_s: float) -> None:
        await self.refresh(force=True)
        self._poller.start(self.refresh, interval_s)

    async def aclose(self) -> None:
        await self._poller.stop()

    # --- reads (in memory) -------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._versions)

    def labels_of(self, name: str) -> dict[str, int]:
        out = dict(self._labels.get(name, {}))
        if self._versions.get(name):
            out[LATEST] = max(self._versions[name])
        return out

    def versions_of(self, name: str) -> list[PromptVersion]:
        return [v for _, v in sorted(self._versions.get(name, {}).items())]

    def resolve(self, ref: str) -> PromptVersion:
        """``name[@version|@label]`` -> the version; unknown names or labels are a 404 that
        lists what exists."""
        name, which = split_ref(ref)
        versions = self._versions.get(name)
        if not versions:
            known = ", ".join(self.names()) or "none pushed yet"
            raise NotFound(f"no prompt named '{name}'; prompts: {known}", param="prompt",
                           code="prompt_not_found")
        if which.isascii() and which.isdigit():  # int() refuses other digits (²)
            found = versions.get(int(which))
            if found is None:
                raise NotFound(f"prompt '{name}' has no version {which}; versions: "
                               f"1..{max(versions)}", param="prompt", code="prompt_not_found")
            return found
        labels = self.labels_of(name)
        if which not in labels:
            raise NotFound(f"prompt '{name}' has no label '{which}'; labels: "
                           f"{', '.join(sorted(labels))}", param="prompt",
                           code="prompt_label_not_found")
        return versions[labels[which]]

    def labels_for(self, v: PromptVersion) -> list[str]:
        return sorted(k for k, n in self.labels_of(v.name).items() if n == v.version)

    # --- writes ------------------------------------------------------------------------------

    async def push(self, spec: PromptSpec, *, message: str | None = None,
                   author: str | None = None) -> tuple[PromptVersion, bool]:
        version, created = await q.insert_version(
            self.store, spec.name, orjson.dumps(spec.to_dict()).decode(), spec.content_hash(),
            message, author)
        await self.refresh(force=True)
        if created:
            await self.audit.try_record(
                "prompt.push", actor=author, target=f"{spec.name}@{version}",
                before=self._hash_of(spec.name, version - 1), after=spec.content_hash(),
                detail={"version": version, "message": message})
        return self._versions[spec.name][version], created

    def _hash_of(self, name: str, version: int | None) -> str | None:
        found = self._versions.get(name, {}).get(version) if version is not None else None
        return found.content_hash if found else None

    async def _audit_move(self, action: str, name: str, label: str, old: int | None, new: int,
                          actor: str | None, reason: str | None) -> None:
        await self.audit.try_record(
            action, actor=actor, target=f"{name}@{label}", before=self._hash_of(name, old),
            after=self._hash_of(name, new),
            detail={"label": label, "from_version": old, "to_version": new, "reason": reason})

    async def set_label(self, ref: str, label: str, *, actor: str | None = None,
                        reason: str | None = None) -> tuple[int | None, int]:
        if label == LATEST or not label or "@" in label or len(label) > 64:
            raise InvalidRequest(f"'{label}' cannot be a label: 'latest' is automatic; use "
                                 "up to 64 characters without '@'", param="label")
        target = self.resolve(ref)
        old = await q.move_label(self.store, target.name, label, target.version, actor,
                                 reason=reason)
        await self.refresh(force=True)
        await self._audit_move("prompt.label", target.name, label, old, target.version, actor,
                               reason)
        return old, target.version

    async def rollback(self, name: str, label: str, *, actor: str | None = None,
                       reason: str | None = None) -> tuple[int, int]:
        """Move ``label`` back to the version it pointed to before its last move."""
        self.resolve(name)  # the prompt exists
        history = await q.label_history(self.store, name, label)
        if not history:
            raise NotFound(f"prompt '{name}' has no label '{label}' to roll back",
                           param="label", code="prompt_label_not_found")
        last = history[0]
        if last["from_version"] is None:
            raise InvalidRequest(f"label '{label}' of '{name}' has never pointed anywhere "
                                 f"else (it was created at version {last['to_version']}); "
                                 "nothing to roll back to", param="label")
        await q.move_label(self.store, name, label, last["from_version"], actor,
                           action="rollback", reason=reason)
        await self.refresh(force=True)
        await self._audit_move("prompt.rollback", name, label, last["to_version"],
                               last["from_version"], actor, reason)
        return last["to_version"], last["from_version"]

    def diff(self, ref_a: str, ref_b: str) -> str:
        a, b = self.resolve(ref_a), self.resolve(ref_b)

        def lines(v: PromptVersion) -> list[str]:
            text = yaml.safe_dump(v.spec.to_dict(), sort_keys=False, allow_unicode=True,
                                  width=100)
            return text.splitlines(keepends=True)

        return "".join(difflib.unified_diff(lines(a), lines(b), f"{a.name}@{a.version}",
                                            f"{b.name}@{b.version}"))
