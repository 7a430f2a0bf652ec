"""The provider kinds and options of a config, checked as the composition root checks them
(:func:`keel.gateway.providers.base.provider_problems`, the same messages) but without
importing keel's provider adapters: a command that only loads the config does not pay for
them.

A built-in kind is known by its name (``keel.config.BUILTIN_PROVIDER_KINDS``) and takes no
options; a plugin's kind by its entry point's name. A plugin the config names is imported, as
the composition root would, to check its options (and whether it can be imported at all);
importing it imports the adapters too, since a plugin's class subclasses keel's ``Provider``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from keel.config import BUILTIN_PROVIDER_KINDS, PROVIDER_GROUP, checkable_providers
from keel.plugins import DeclaredNames


def provider_kinds() -> DeclaredNames:
    """The provider kinds: the built-ins and the installed plugins' (nothing imported). A
    PluginError when installed plugins clash."""
    return DeclaredNames.read("provider", PROVIDER_GROUP, BUILTIN_PROVIDER_KINDS, what="kind")


def kind_problems(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every provider entry (``providers:`` as loaded, or as written in a file the loader
    refused) whose ``kind`` is unknown (or a plugin that cannot be used) or whose ``options``
    its provider refuses, each as ``providers[i].key: what; fix``; the entries skipped are
    those ``keel.config.checkable_providers`` skips. A PluginError when installed plugins
    clash."""
    kinds = provider_kinds()
    out: list[str] = []
    for where, kind, options in checkable_providers(entries):
        if kind in kinds.builtins:
            if options:
                out.append(f"{where}.options: provider kind '{kind}' takes no options "
                           "(options: is for plugin providers); remove it")
        elif kind in kinds.plugins:
            from keel.gateway.providers.base import entry_problem

            problem = entry_problem(where, kind, options)
            if problem is not None:
                out.append(problem)
        else:
            out.append(f"{where}.kind: {kinds.unknown(kind)}")
    return out
