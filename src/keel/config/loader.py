"""Reading the YAML config: the file found or named, ``env:NAME`` values resolved, validated
once into a ``KeelConfig``; any problem raises one ``ConfigError`` with every problem in it."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keel.config.messages import validation_messages
from keel.config.root import KeelConfig, default_config
from keel.errors import ConfigError
from keel.locations import locate


def _resolve_env(value: Any, where: str, missing: dict[str, str]) -> Any:
    """Replace ``env:NAME`` strings with the variable's value, recursively; a variable that is
    not set is noted in ``missing`` (key path -> name) and left empty."""
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            missing[where] = name
            return ""
        return os.environ[name]
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{where}.{k}" if where else k, missing)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{where}[{i}]", missing) for i, v in enumerate(value)]
    return value


def parse_config(data: Any, path: str) -> KeelConfig:
    """Validate a parsed config; every problem found is in the ``ConfigError``, one a line."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must be a mapping with keys providers: and models:")
    missing: dict[str, str] = {}
    data = _resolve_env(data, "", missing) if data else data
    lines = [f"{path}: {where}: environment variable {name} is not set; export {name}=... "
             "before starting keel, or change the value" for where, name in missing.items()]
    try:
        config = KeelConfig.model_validate(data)
    except ValidationError as exc:
        found = validation_messages(exc, path, KeelConfig) + _references_despite(exc, data, path)
        lines += [line for line in found
                  if not any(line.startswith(f"{path}: {where}:") for where in missing)]
        raise ConfigError("\n".join(lines)) from None
    if lines:
        raise ConfigError("\n".join(lines))
    config._base_dir = Path(path).parent
    return config


def _references_despite(exc: ValidationError, data: dict[str, Any], path: str) -> list[str]:
    """The cross-reference problems (unknown providers, models, routes) of a config whose
    only other problems are unknown keys: checked again without those keys, so that one
    pass reports both."""
    errors = exc.errors()
    if not all(e["type"] == "extra_forbidden" for e in errors):
        return []  # a bad value: what depends on it cannot be checked
    pruned = copy.deepcopy(data)
    for e in errors:
        *parents, key = e["loc"]
        node: Any = pruned
        for part in parents:
            if isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return []
        if not isinstance(node, dict):
            return []
        node.pop(key, None)
    try:
        KeelConfig.model_validate(pruned)
    except ValidationError as again:
        return [line for line in validation_messages(again, path, KeelConfig)
                if "unknown key" not in line]
    return []


def config_warnings(config: KeelConfig) -> list[str]:
    """What is valid but almost certainly not meant."""
    out = []
    if not config.models:
        out.append("no models are configured, so keel would answer every request with "
                   "model_not_found; add models: (see the config reference in the README)")
    return out


def load_config(path: str | os.PathLike[str] | None, *, required: bool = False) -> KeelConfig:
    """Load and validate the YAML config; with no file (and not required), the mock default.
    ``None``: the file keel.locations finds."""
    if path is None:
        found = locate().config
        if found is None:
            return default_config()
        path = found
    p = Path(path)
    if not p.exists():
        if required:
            raise ConfigError(f"{p}: config file not found; create it or pass --config PATH")
        return default_config()
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data, str(p))
