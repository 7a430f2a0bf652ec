"""The console's keys pages."""

from __future__ import annotations

from keel.console.web import Action, Page

PAGES: list[Page] = []
ACTIONS: list[Action] = []
