"""The console's pages, one module each, in navigation order. A module declares its pages
with ``keel.console.web.page`` into its ``PAGES`` list and its changes with ``action`` into
``ACTIONS``; adding a page is a function there (and a template), or a new module here."""

from __future__ import annotations

from importlib import import_module

from keel.console.web import Action, Page

__all__ = ["MODULES", "collect"]

MODULES = ("overview", "traces", "costs", "prompts", "evals", "reviews", "alerts", "drift",
           "governance", "keys")


def collect() -> tuple[list[Page], list[Action]]:
    pages: list[Page] = []
    actions: list[Action] = []
    for name in MODULES:
        module = import_module(f"keel.console.pages.{name}")
        pages += module.PAGES
        actions += getattr(module, "ACTIONS", [])
    return pages, actions
