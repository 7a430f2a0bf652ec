"""Eval datasets: cases imported from JSONL, CSV or YAML (or from stored traces), kept as
immutable numbered versions so every run can record exactly which cases it used.

A case has ``vars`` (template variables) and/or ``messages`` (a whole conversation), and
optionally ``expected``, ``context`` (documents), ``tags``, ``metadata`` and ``id``.
CSV columns ``expected``, ``context`` (a JSON list or one document), ``tags``
(comma-separated) and ``id`` are taken as such; every other column is a variable.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from keel.errors import KeelError, NotFound
from keel.store import Store
from keel.store import datasets as q
from keel.store.traces import TraceFilter, get_trace, list_traces

CASE_KEYS = ("id", "vars", "messages", "expected", "context", "tags", "metadata")


class DatasetError(KeelError):
    """A dataset file or reference that cannot be used (says where and why)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_dataset"


@dataclass(slots=True)
class Case:
    vars: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    expected: str | None = None
    context: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {"vars": self.vars}
        for key in ("messages", "expected", "id"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        for key in ("context", "tags", "metadata"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str) -> Case:
        return case_from_dict(orjson.loads(text), "stored case")


def case_from_dict(raw: Any, where: str) -> Case:
    if not isinstance(raw, dict):
        raise DatasetError(f"{where}: a case must be an object with vars and/or messages")
    unknown = sorted(set(raw) - set(CASE_KEYS) - {"variables"})
    if unknown:
        raise DatasetError(f"{where}: unknown key(s) {', '.join(unknown)}; a case may have "
                           f"{', '.join(CASE_KEYS)}")
    variables = raw.get("vars", raw.get("variables")) or {}
    if not isinstance(variables, dict):
        raise DatasetError(f"{where}: vars must be an object of name -> value")
    messages = raw.get("messages")
    if messages is not None and (not isinstance(messages, list) or not all(
            isinstance(m, dict) and "role" in m for m in messages)):
        raise DatasetError(f"{where}: messages must be a list of {{role, content}} objects")
    if not variables and not messages:
        raise DatasetError(f"{where}: a case needs vars or messages")
    expected = raw.get("expected")
    if expected is not None and not isinstance(expected, str):
        expected = orjson.dumps(expected).decode()
    context = raw.get("context") or []
    if isinstance(context, str):
        context = [context]
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise DatasetError(f"{where}: context must be a list of documents (strings)")
    tags = raw.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DatasetError(f"{where}: metadata must be an object")
    case_id = raw.get("id")
    return Case(vars=dict(variables), messages=messages, expected=expected,
                context=list(context), tags=[str(t) for t in tags], metadata=metadata,
                id=str(case_id) if case_id is not None else None)


@dataclass(slots=True)
class ImportReport:
    cases: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line or row, why)


def parse_file(path: Path, report: ImportReport, *, on_error: str = "stop") -> Iterator[Case]:
    """Cases from a .jsonl, .csv or .yaml/.yml file, one at a time (bounded memory).

    ``on_error``: "stop" raises at the first bad line; "skip" records it and goes on."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv", ".yaml", ".yml"):
        raise DatasetError(f"{path}: unsupported file type '{suffix}'; use .jsonl, .csv or "
                           ".yaml")
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    rows = _jsonl_rows(path) if suffix == ".jsonl" else _csv_rows(path) if suffix == ".csv" \
        else _yaml_rows(path)
    for line, raw, parse_error in rows:
        try:
            if parse_error:
                raise DatasetError(f"{path}:{line}: {parse_error}")
            case = case_from_dict(raw, f"{path}:{line}")
        except DatasetError as exc:
            if on_error != "skip":
                raise
            report.skipped.append((line, exc.message))
            continue
        report.cases += 1
        yield case


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield n, orjson.loads(line), None
            except orjson.JSONDecodeError as exc:
                yield n, None, f"not valid JSON ({exc})"


def _csv_rows(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), 2):  # line 1 is the header
            raw: dict[str, Any] = {"vars": {}}
            for key, value in row.items():
                if key in ("expected", "id", "tags"):
                    raw[key] = value or None
                elif key == "context":
                    raw[key] = _context_cell(value)
                elif key is not None:
                    raw["vars"][key] = value
            yield n, raw, None


def _context_cell(value: str | None) -> Any:
    if not value:
        return []
    if value.lstrip().startswith("["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return [value]
    return [value]


def _yaml_rows(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        yield (mark.line + 1 if mark else 0), None, f"not valid YAML: {exc}"
        return
    cases = data.get("cases") if isinstance(data, dict) else data
    if not isinstance(cases, list):
        yield 0, None, "a YAML dataset is a list of cases (or a mapping with cases:)"
        return
    for i, raw in enumerate(cases):
        yield i + 1, raw, None


class Datasets:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def import_file(self, name: str, path: Path, *, on_error: str = "stop",
                          message: str | None = None,
                          reuse: bool = False) -> tuple[int, ImportReport]:
        """A new version of ``name`` from the file, streamed (bounded memory). With
        ``reuse``, a file whose cases equal the latest version's gives that version."""
        report = ImportReport()
        digest = hashlib.sha256()
        for case in parse_file(path, report, on_error=on_error):
            _feed(digest, case.to_json())
        if not report.cases:
            raise DatasetError(f"{path}: no usable cases")
        content_hash = digest.hexdigest()
        if reuse:
            latest = await q.latest_version(self.store, name)
            if latest is not None and latest["content_hash"] == content_hash:
                return int(latest["version"]), report
        again = ImportReport()
        cases = (c.to_json() for c in parse_file(path, again, on_error=on_error))
        version, _ = await q.create_version(self.store, name, cases, content_hash,
                                            str(path), message)
        return version, report

    async def add_traces(self, name: str, flt: TraceFilter, *, limit: int = 100,
                         message: str | None = None) -> tuple[int, int]:
        """A new version: the latest version's cases plus one case per matching stored
        trace (its messages; the answer as metadata, ``expected`` left for a reviewer)."""
        rows, _ = await list_traces(self.store, flt, limit=limit)
        return await self.add_trace_ids(name, [row["id"] for row in rows], message=message)

    async def add_trace_ids(self, name: str, trace_ids: list[str], *,
                            message: str | None = None) -> tuple[int, int]:
        """As :meth:`add_traces`, for the stored traces named (a trace whose messages were
        not captured is skipped)."""
        cases: list[str] = []
        latest = await q.latest_version(self.store, name)
        if latest is not None:
            cases = [data async for _, data in q.iter_cases(self.store, name,
                                                             latest["version"])]
        added = 0
        for trace_id in trace_ids:
            full = await get_trace(self.store, trace_id)
            request = (full or {}).get("request") or {}
            if full is None or not request.get("messages"):
                continue
            answer = (full.get("response") or {}).get("choices") or [{}]
            case = Case(messages=request["messages"], tags=["from-trace"], id=trace_id,
                        metadata={"trace_id": trace_id, "status": full["status"],
                                  "error_type": full["error_type"],
                                  "answer": (answer[0].get("message") or {}).get("content")})
            cases.append(case.to_json())
            added += 1
        if not added:
            raise DatasetError("no stored traces match (with their messages captured); "
                               "widen the filter, or check KEEL_CAPTURE_CONTENT")
        version, _ = await q.create_version(self.store, name, cases, _hash(cases),
                                            "traces", message)
        return version, added

    async def resolve(self, ref: str) -> dict[str, Any]:
        """``name`` (latest) or ``name@version`` -> the version's record."""
        name, _, which = ref.partition("@")
        if which and not (which.isascii() and which.isdigit() and len(which) <= 9):
            raise DatasetError(f"dataset reference '{ref}': use name or name@VERSION")
        row = (await q.get_version(self.store, name, int(which)) if which
               else await q.latest_version(self.store, name))
        if row is None:
            names = sorted({r["name"] for r in await q.list_versions(self.store)})
            raise NotFound(f"no dataset '{ref}'; datasets: {', '.join(names) or 'none yet'}",
                           code="dataset_not_found")
        return row

    async def cases(self, name: str, version: int) -> Any:
        async for idx, data in q.iter_cases(self.store, name, version):
            yield idx, Case.from_json(data)


def _feed(digest: Any, case_json: str) -> None:
    digest.update(case_json.encode())
    digest.update(b"\n")


def _hash(cases: list[str]) -> str:
    h = hashlib.sha256()
    for c in cases:
        _feed(h, c)
    return h.hexdigest()

