"""Pydantic validation errors as keel reports them: one line per problem,
``FILE: key.path: what; fix``, a misspelt key or value with the closest allowed one."""

from __future__ import annotations

import difflib
import re
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from keel.config.base import _KeyProblem, _KeyProblems


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation: Any) -> Any:
    """The model inside ``X | None``, ``list[X]`` and ``dict[str, X]`` annotations."""
    while True:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        elif origin in (list, tuple, set, frozenset) and args:
            annotation = args[0]
        else:
            return annotation


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` (a pydantic error location) under ``model``; [] if that
    is not a model's mapping."""
    t: Any = model
    for part in loc:
        t = _unwrap(t)
        if get_origin(t) is dict:  # part is one of the mapping's keys
            t = get_args(t)[1] if get_args(t) else Any
            continue
        if isinstance(part, int):
            continue
        if not (isinstance(t, type) and issubclass(t, BaseModel)) or part not in t.model_fields:
            return []
        t = t.model_fields[part].annotation
    t = _unwrap(t)
    return list(t.model_fields) if isinstance(t, type) and issubclass(t, BaseModel) else []


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    if allowed:
        return f"unknown key '{key}'; the keys here are: {', '.join(allowed)}"
    return f"unknown key '{key}'; check the spelling against the reference in the README"


def validation_messages(exc: ValidationError, path: str,
                        model: type[BaseModel] | None = None) -> list[str]:
    """Every problem of a pydantic validation error, each as ``FILE: key.path: what; fix``.
    With ``model`` (the one validated), a misspelt key gets the closest allowed one."""
    out: list[str] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = _loc(loc)
        ctx_err = (err.get("ctx") or {}).get("error")
        problems = (ctx_err.problems if isinstance(ctx_err, _KeyProblems)
                    else [ctx_err] if isinstance(ctx_err, _KeyProblem) else [])
        for p in problems:  # keys are relative to the model that raised it
            out.append(f"{path}: {f'{where}.{p.key}' if where else p.key}: {p.problem}; {p.fix}")
        if problems:
            continue
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(str(loc[-1]), _keys_at(model, loc[:-1]) if model else [])
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
            choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            close = difflib.get_close_matches(str(err.get("input")), choices, n=1, cutoff=0.6)
            if close:
                msg += f"; did you mean '{close[0]}'?"
        elif err["type"] == "missing":
            msg = "required key is missing; add it"
        line = f"{path}: {where or '(top level)'}: {msg}"
        if line not in out:
            out.append(line)
    return out


def validation_message(exc: ValidationError, path: str,
                       model: type[BaseModel] | None = None) -> str:
    """All the problems of a pydantic validation error, one a line (validation_messages)."""
    return "\n".join(validation_messages(exc, path, model))
