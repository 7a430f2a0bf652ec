"""Guardrail policies: compiled from the config, versioned by content hash, found per request.

A policy (``policies:`` in the config) governs features and/or routes. It lists scanner rules
for the request (``input:``) and the answer (``output:``), each with an action; an optional
``review:`` rule holds answers for a human; ``safe_reply`` answers a blocked request with a
fixed text instead of an error. Its *version* is a hash of its canonical content, so any
change to a policy gives a new version, and the version that governed a request is on its
trace. See :mod:`keel.guard.engine` for how a policy runs in the request path.

Which policy governs a request: the one naming its feature, else the one naming its route,
else the one with ``features: ['*']``, else none (no scanning at all, no cost).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from keel.errors import ConfigError
from keel.guard.scanners import Scanner, ScannerConfigError, build_scanner
from keel.guard.when import Condition, ConditionError
from keel.plugins import LocatedConfigError

if TYPE_CHECKING:
    from keel.config import KeelConfig, PolicyConfig

Action = Literal["allow", "flag", "redact", "block", "review"]
ACTIONS: tuple[Action, ...] = ("allow", "flag", "redact", "block", "review")
# the more severe action wins when several rules trigger
SEVERITY: dict[str, int] = {"allow": 0, "flag": 1, "redact": 2, "review": 3, "block": 4}
# scanner types whose findings are spans of text that can be replaced by a placeholder
REDACTABLE = frozenset({"pii", "secrets", "banned", "urls"})
# the placeholder label of a redacted span, by scanner type (pii spans keep their own kind)
LABELS = {"secrets": "secret", "banned": "term", "urls": "url"}
ROLES = ("system", "developer", "user", "assistant", "tool")
DEFAULT_ROLES = ("user", "assistant", "tool")  # the system prompt is the developer's own
RULE_KEYS = ("scanner", "action", "roles")


class PolicyError(LocatedConfigError):
    """A policy that cannot be compiled: the message names where, which key and the fix."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One scanner of a policy, at one stage, with its action."""

    scanner: Scanner
    action: Action
    roles: frozenset[str]
    stage: Literal["input", "output"]

    @property
    def name(self) -> str:
        return self.scanner.name

    @property
    def redacts(self) -> bool:
        return self.action == "redact"


@dataclass(frozen=True, slots=True)
class ReviewRule:
    """When answers are held (``when``: always, only when a ``review`` rule triggers, or a
    condition), how the client waits, and when an undecided answer is rejected."""

    when: Condition | bool
    mode: Literal["wait", "async"]
    timeout_s: float


# a policy whose rules say "review" but which has no review: block
DEFAULT_REVIEW = ReviewRule(when=False, mode="wait", timeout_s=600.0)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    version: str  # sha256 of the canonical spec, 12 hex characters
    spec: dict[str, Any]  # the canonical spec the version hashes (stored with the version)
    features: tuple[str, ...]
    routes: tuple[str, ...]
    input: tuple[Rule, ...]
    output: tuple[Rule, ...]
    review: ReviewRule | None
    safe_reply: str | None
    canary: bool
    fail_closed: bool
    redacts_input: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "redacts_input", any(r.redacts for r in self.input))

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def holds_output(self) -> bool:
        """Whether the answer must be complete before the client sees any of it (output
        rules, review, or placeholders to restore), so a stream is buffered."""
        return bool(self.output) or self.review is not None or self.redacts_input


def canonical(spec: Mapping[str, Any]) -> bytes:
    return orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)


def version_of(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(spec)).hexdigest()[:12]


def _schema_file(entry: dict[str, Any], base_dir: Path, where: str,
                 files: dict[str, str]) -> dict[str, Any]:
    """``schema: path.json`` (relative to the config file) read into the mapping the
    json_schema scanner takes; ``files`` gets the file's content hash (part of the version:
    editing the file changes the policy)."""
    raw = entry.get("schema")
    if not isinstance(raw, str):
        return entry
    path = Path(raw)
    if not path.is_absolute():
        path = base_dir / path
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read the schema file {path}: {exc.strerror}; give a path "
                          "relative to the config file, or the schema inline",
                          key="schema", where=where) from None
    except ValueError as exc:
        raise PolicyError(f"the schema file {path} is not valid JSON: {exc}", key="schema",
                          where=where) from None
    if not isinstance(schema, dict):
        raise PolicyError(f"the schema file {path} must hold a JSON object (a schema), not "
                          f"{type(schema).__name__}", key="schema", where=where)
    files[raw] = hashlib.sha256(canonical(schema)).hexdigest()
    return {**entry, "schema": schema}


def compile_rule(entry: Any, stage: Literal["input", "output"], where: str,
                 base_dir: Path, files: dict[str, str] | None = None) -> Rule:
    if not isinstance(entry, dict):
        raise PolicyError("each rule is a mapping, e.g. {scanner: pii, action: redact}",
                          where=where)
    scanner_type = entry.get("scanner")
    if not isinstance(scanner_type, str) or not scanner_type:
        raise PolicyError("required: the scanner type, e.g. scanner: pii", key="scanner",
                          where=where)
    action = entry.get("action", "block")
    if action not in ACTIONS:
        raise PolicyError(f"must be one of {', '.join(ACTIONS)}, got {action!r}",
                          key="action", where=where)
    roles_raw = entry.get("roles", list(DEFAULT_ROLES))
    if (not isinstance(roles_raw, list) or not roles_raw
            or not all(r in ROLES for r in roles_raw)):
        raise PolicyError(f"must be a list of message roles ({', '.join(ROLES)}), got "
                          f"{roles_raw!r}", key="roles", where=where)
    if stage == "output" and "roles" in entry:
        raise PolicyError("roles apply to input rules only (an answer has one role)",
                          key="roles", where=where)
    config = {k: v for k, v in entry.items() if k not in RULE_KEYS}
    config["type"] = scanner_type
    if scanner_type == "json_schema":
        config = _schema_file(config, base_dir, where, {} if files is None else files)
    try:
        scanner = build_scanner(config, where)
    except ScannerConfigError as exc:
        detail = exc.detail.replace("'type'", "'scanner'").replace(
            "allowed: type,", "allowed: scanner, action, roles (input),")
        raise PolicyError(detail, key=exc.key if exc.key != "type" else "scanner",
                          where=where) from None
    if scanner.stage not in (stage, "both"):
        other = "output" if stage == "input" else "input"
        raise PolicyError(f"scanner '{scanner_type}' runs on the {scanner.stage} only; move "
                          f"it under {other}:", key="scanner", where=where)
    if action == "redact" and scanner_type not in REDACTABLE:
        raise PolicyError(f"scanner '{scanner_type}' cannot redact (its findings are not "
                          f"text to replace; redactable: {', '.join(sorted(REDACTABLE))}); "
                          "use flag, block or review", key="action", where=where)
    return Rule(scanner, action, frozenset(roles_raw), stage)


def compile_policy(cfg: PolicyConfig, where: str, base_dir: Path) -> Policy:
    files: dict[str, str] = {}  # schema files read: path -> content hash
    rules_in = tuple(compile_rule(e, "input", f"{where}.input[{i}]", base_dir, files)
                     for i, e in enumerate(cfg.input))
    rules_out = tuple(compile_rule(e, "output", f"{where}.output[{i}]", base_dir, files)
                      for i, e in enumerate(cfg.output))
    spec = cfg.model_dump(mode="json")
    if files:
        spec["schema_files"] = files
    review = None
    if cfg.review is not None:
        when: Condition | bool = cfg.review.when if isinstance(cfg.review.when, bool) else True
        if isinstance(cfg.review.when, str):
            try:
                when = Condition(cfg.review.when)
            except ConditionError as exc:
                raise PolicyError(str(exc), key="when", where=f"{where}.review") from None
        review = ReviewRule(when, cfg.review.mode, cfg.review.timeout_s)
    elif any(r.action == "review" for r in (*rules_in, *rules_out)):
        review = DEFAULT_REVIEW
    return Policy(
        name=cfg.name, version=version_of(spec), spec=spec, features=tuple(cfg.features),
        routes=tuple(cfg.routes), input=_cheap_first(rules_in), output=_cheap_first(rules_out),
        review=review, safe_reply=cfg.safe_reply, canary=cfg.canary,
        fail_closed=cfg.on_scanner_error == "block")


def _cheap_first(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """Cheap scanners first (stable: the config's order otherwise)."""
    return tuple(sorted(rules, key=lambda r: r.scanner.cost != "cheap"))


class PolicySet:
    """Every compiled policy, and which one governs a (feature, route)."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self.policies = tuple(policies)
        self.by_feature: dict[str, Policy] = {}
        self.by_route: dict[str, Policy] = {}
        self.default: Policy | None = None
        for p in self.policies:
            for f in p.features:
                if f == "*":
                    self.default = p
                else:
                    self.by_feature[f] = p
            for r in p.routes:
                self.by_route[r] = p

    def __bool__(self) -> bool:
        return bool(self.policies)

    def for_request(self, feature: str | None, route: str | None) -> Policy | None:
        p = self.by_feature.get(feature or "")
        if p is None and route is not None:
            p = self.by_route.get(route)
        return p or self.default

    def get(self, name: str) -> Policy | None:
        return next((p for p in self.policies if p.name == name), None)

    def versions(self) -> dict[str, str]:
        """Each policy's name and version (its content hash), as the audit log records them."""
        return {p.name: p.version for p in self.policies}

    def stored_forms(self) -> list[tuple[str, str, str]]:
        """Each policy as ``store.policies.save_versions`` keeps it: name, version and its
        spec as canonical JSON (what the version hashes)."""
        return [(p.name, p.version, canonical(p.spec).decode()) for p in self.policies]


def compile_policies(configs: Iterable[PolicyConfig], base_dir: Path) -> PolicySet:
    return PolicySet(compile_policy(c, f"policies[{i}]", base_dir)
                     for i, c in enumerate(configs))


def config_policies(config: KeelConfig, path: str | None) -> PolicySet:
    """The policies of a loaded config compiled (scanners built, conditions parsed, schema
    files read): done once, by whoever composes keel from the config. A ConfigError names
    the config file ``path``, as the loader's own errors do."""
    try:
        return compile_policies(config.policies, config.base_dir)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}" if path else exc.message) from None
