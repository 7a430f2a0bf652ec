"""Scanner types, findings and the scanner registry.

A scanner looks at one text (a prompt on the way in, an answer on the way out) and returns a
:class:`Finding`: a 0..1 score, whether it triggered, where (typed character spans, never the
text itself) and a short explanation that never echoes what it found. Scanners are
synchronous, do no I/O and compile everything they need when they are built, so the policy
engine can run them in the request path.

Scanner *types* (``pii``, ``secrets``, ...) are names in the :data:`SCANNERS` registry
(:mod:`keel.plugins`): the built-ins register with :func:`register_scanner`, an installed
distribution adds a type through the ``keel.scanners`` entry point group (name: the type;
object: the factory, a callable taking the entry's config mapping and returning a
:class:`Scanner`). :func:`build_scanner` turns one config entry (``{type: pii, ...}``) into
a ready scanner and reports a bad entry as a :class:`ScannerConfigError` naming the entry,
the key and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from keel.plugins import FactoryRegistry, LocatedConfigError

Stage = Literal["input", "output", "both"]
Cost = Literal["cheap", "moderate"]
STAGES: tuple[str, ...] = ("input", "output", "both")


class Span(NamedTuple):
    """Where a scanner found something: a kind (``email``, ``aws_access_key``, ...) and the
    ``[start, end)`` character offsets in the scanned text."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model made (from an OpenAI-format ``tool_calls`` entry)."""

    name: str
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ScanContext:
    """What a scanner may need besides the text. The policy engine fills it per request.

    ``stage`` is where the text is being scanned; ``feature`` the request's feature;
    ``system_prompt`` the system prompt sent (for leakage checks on the output);
    ``canaries`` tokens planted in that system prompt (see ``make_canary``);
    ``tool_calls`` the tool calls in the model's answer.
    """

    stage: Literal["input", "output"] = "input"
    feature: str | None = None
    system_prompt: str | None = None
    canaries: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


EMPTY_CONTEXT = ScanContext()


def tool_calls_from(message: Any) -> tuple[ToolCall, ...]:
    """The tool calls of an OpenAI-format assistant message, or of a chat completion body
    (its first choice's message); ``()`` when there are none or the shape is unexpected."""
    if isinstance(message, dict) and isinstance(message.get("choices"), list):
        choices = message["choices"]
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = first.get("message") or first.get("delta") or {}
    if not isinstance(message, dict):
        return ()
    out = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            args = fn.get("arguments")
            out.append(ToolCall(fn["name"], args if isinstance(args, str) else ""))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Finding:
    """A scanner's verdict on one text.

    ``score`` is 0..1; ``triggered`` is the score measured against the scanner's threshold;
    ``matches`` are typed spans into the scanned text; ``explanation`` is short and human and
    never contains the matched text. ``error`` is set when the scanner could not scan (the
    engine decides whether that fails open or closed; it is never a silent pass).
    """

    scanner: str
    score: float
    triggered: bool
    matches: list[Span] = field(default_factory=list)
    explanation: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for traces and the audit trail (spans only, no text)."""
        out: dict[str, Any] = {"scanner": self.scanner, "score": round(self.score, 4),
                               "triggered": self.triggered,
                               "matches": [[m.kind, m.start, m.end] for m in self.matches],
                               "explanation": self.explanation}
        if self.error is not None:
            out["error"] = self.error
        return out


@runtime_checkable
class Scanner(Protocol):
    name: str  # the name this scanner reports under (defaults to its type)
    type_name: str  # the registered type it was built from
    stage: Stage
    cost: Cost

    def scan(self, text: str, ctx: ScanContext = EMPTY_CONTEXT) -> Finding: ...


Factory = Callable[[dict[str, Any]], Scanner]
F = TypeVar("F", bound=Factory)


class ScannerConfigError(LocatedConfigError):
    """A scanner entry that cannot be built; the message names where, which key and the fix.

    ``key`` is the offending option (``None`` for the entry as a whole); ``detail`` is the
    message without the location prefix.
    """


def _load_builtins() -> None:
    from keel.guard import scanners  # noqa: F401  (imports the built-ins, which register)


SCANNERS: FactoryRegistry[Scanner] = FactoryRegistry(
    "scanner", "keel.scanners", ScannerConfigError, _load_builtins,
    example="{type: pii} or {type: injection, threshold: 0.7}", type_example="pii")
_REGISTRY: dict[str, Factory] = SCANNERS.entries


def register_scanner(type_name: str) -> Callable[[F], F]:
    """Register a scanner factory (a callable taking the config mapping) under ``type_name``.

    Registering the same name again in code replaces the earlier factory; a plugin installed
    as a distribution never replaces one (its name clashing is an error).
    """
    return SCANNERS.register(type_name)


def scanner_types() -> list[str]:
    """Every scanner type, built-in or plugin, sorted."""
    return SCANNERS.names()


def build_scanner(config: dict[str, Any], where: str = "scanners[0]") -> Scanner:
    """Build one scanner from its config mapping (``{type: pii, kinds: [email, card]}``)."""
    return SCANNERS.build(config, where)
