"""Guard scanners: the registry and the built-in, offline scanners.

Importing this package registers the built-in types (through ``register_scanner``, the same
door plugins use): pii, secrets, injection, unicode, banned, max_tokens (input side) and
urls, json_schema, canary, tools (output side). See each module for what it detects.
"""

from keel.guard.scanners import (  # noqa: F401  (register)
    content,
    injection,
    output,
    pii,
    secrets,
    unicode,
)
from keel.guard.scanners.base import (
    EMPTY_CONTEXT,
    Cost,
    Factory,
    Finding,
    ScanContext,
    Scanner,
    ScannerConfigError,
    Span,
    Stage,
    ToolCall,
    build_scanner,
    register_scanner,
    scanner_types,
    tool_calls_from,
)
from keel.guard.scanners.injection.classifiers import (
    InjectionClassifier,
    injection_classifier_types,
    register_injection_classifier,
)
from keel.guard.scanners.output import make_canary

__all__ = ["EMPTY_CONTEXT", "Cost", "Factory", "Finding", "InjectionClassifier", "ScanContext",
           "Scanner", "ScannerConfigError", "Span", "Stage", "ToolCall", "build_scanner",
           "injection_classifier_types", "make_canary", "register_injection_classifier",
           "register_scanner", "scanner_types", "tool_calls_from"]
