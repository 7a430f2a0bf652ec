"""Classifier backends for the ``injection`` scanner: the protocol a backend meets and the
registry plugins add theirs to (keel ships none)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from keel.plugins import Registry


@runtime_checkable
class InjectionClassifier(Protocol):
    """A model (or anything else) that rates a text: 0 benign .. 1 injection. Synchronous; it
    runs in the request path, so a backend must be local and fast. keel ships none."""

    def classify(self, text: str) -> float: ...


ClassifierFactory = Callable[[dict[str, Any]], InjectionClassifier]
C = TypeVar("C", bound=ClassifierFactory)


def _no_builtins() -> None:
    """keel ships no classifier backend; plugins and code add them."""


def _classifier_factory(name: str, item: object) -> ClassifierFactory:
    if not callable(item):
        raise TypeError(f"{item!r}, not a classifier factory (a callable taking the options "
                        "mapping, such as a class)")
    return cast(ClassifierFactory, item)


CLASSIFIERS: Registry[ClassifierFactory] = Registry(
    "injection classifier", "keel.injection_classifiers", _no_builtins, _classifier_factory)
_CLASSIFIERS: dict[str, ClassifierFactory] = CLASSIFIERS.entries


def register_injection_classifier(name: str) -> Callable[[C], C]:
    """Register a classifier factory (taking its options mapping) under ``name``; select it
    with ``classifier: {type: NAME, ...options}`` on an ``injection`` scanner. An installed
    distribution adds one through the ``keel.injection_classifiers`` entry point group."""
    return CLASSIFIERS.register(name)


def injection_classifier_types() -> list[str]:
    return CLASSIFIERS.names()
