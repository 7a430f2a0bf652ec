"""``when:`` conditions of a policy's review rule: a small, safe expression language.

A condition is a Python-like boolean expression over a fixed set of names, parsed once when
the config is loaded (an unknown name, an unsupported construct or a syntax error is a
config error that shows the allowed forms) and evaluated per request without ``eval``::

    feature == 'contracts'
    flagged and model in ['gpt-4o', 'gpt-4.1']
    'injection' in triggered or tags['tier'] == 'enterprise'

Names: ``feature``, ``team``, ``model`` (as requested), ``route``, ``user`` (strings or
None), ``tags`` (the request's tags; ``tags['k']`` is None when absent), ``flagged`` (a
scanner with action ``flag`` triggered), ``triggered`` (the names of every scanner that
triggered, on input or output). Operators: ``and or not == != in not in < <= > >=``,
string/number/bool/None literals, and lists of them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

NAMES = ("feature", "team", "model", "route", "user", "tags", "flagged", "triggered")
EXAMPLE = "feature == 'contracts' or flagged"


class ConditionError(ValueError):
    """A condition that cannot be used; the message says what and shows a valid one."""


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.In: lambda a, b: b is not None and a in b,
    ast.NotIn: lambda a, b: b is None or a not in b,
    ast.Lt: lambda a, b: a is not None and b is not None and a < b,
    ast.LtE: lambda a, b: a is not None and b is not None and a <= b,
    ast.Gt: lambda a, b: a is not None and b is not None and a > b,
    ast.GtE: lambda a, b: a is not None and b is not None and a >= b,
}


class Condition:
    """A parsed ``when:`` expression; :meth:`__call__` evaluates it on a mapping of NAMES."""

    __slots__ = ("_tree", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ConditionError(f"not a valid condition ({exc.msg}); e.g. {EXAMPLE}") from None
        self._check(tree.body)
        self._tree = tree.body

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._check(node.operand)
        elif (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
              and isinstance(node.operand, ast.Constant)
              and isinstance(node.operand.value, int | float)
              and not isinstance(node.operand.value, bool)):
            pass  # a negative number
        elif isinstance(node, ast.Compare):
            if not all(type(op) in _COMPARE for op in node.ops):
                raise ConditionError(f"unsupported comparison; use {', '.join(_OPS)}")
            for v in (node.left, *node.comparators):
                self._check(v)
        elif isinstance(node, ast.Name):
            if node.id not in NAMES:
                raise ConditionError(f"unknown name '{node.id}'; conditions may use "
                                     f"{', '.join(NAMES)}")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, str | int | float | bool | type(None)):
                raise ConditionError("literals must be strings, numbers, true/false or None")
        elif isinstance(node, ast.List | ast.Tuple | ast.Set):
            for v in node.elts:
                if not isinstance(v, ast.Constant | ast.UnaryOp):
                    raise ConditionError("a list in a condition holds literals only, e.g. "
                                         "model in ['gpt-4o', 'gpt-4.1']")
                self._check(v)
        elif isinstance(node, ast.Subscript):
            if not (isinstance(node.value, ast.Name) and node.value.id == "tags"
                    and isinstance(node.slice, ast.Constant)
                    and isinstance(node.slice.value, str)):
                raise ConditionError("only tags['name'] may be indexed, with a quoted name")
        else:
            raise ConditionError(f"'{ast.unparse(node)}' is not allowed in a condition; use "
                                 f"names ({', '.join(NAMES)}), literals, comparisons and "
                                 f"and/or/not, e.g. {EXAMPLE}")

    def __call__(self, env: Mapping[str, Any]) -> bool:
        return bool(self._eval(self._tree, env))

    def _eval(self, node: ast.AST, env: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(v, env) for v in node.values)
            return any(self._eval(v, env) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self._eval(node.operand, env)
            return not self._eval(node.operand, env)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self._eval(right_node, env)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError:  # e.g. 'a' < 3: false, never an error mid-request
                    return False
                left = right
            return True
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self._eval(v, env) for v in node.elts]
        assert isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
        tags = env.get("tags") or {}
        return tags.get(node.slice.value)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


_OPS = ("==", "!=", "in", "not in", "<", "<=", ">", ">=")
