"""The filter every console page shares: feature, team, model and a time range, kept in the
URL so a view is a link, and carried from page to page by the navigation.

``range`` is a preset length back from now (``1h``, ``24h``, ``7d``, ``30d``, ``90d``), or
``from``/``to`` name a fixed window (any time ``keel.timeparse`` reads: ISO dates and
times, UNIX seconds). A fixed window wins over a preset.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from keel.errors import InvalidRequest
from keel.timeparse import parse_time

__all__ = ["RANGES", "Filters"]

RANGES: dict[str, float] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0,
                            "30d": 30 * 86400.0, "90d": 90 * 86400.0}
DEFAULT_RANGE = "7d"
MAX_VALUE = 128
NAMES = ("feature", "team", "model")


def _text(q: Mapping[str, str], name: str) -> str | None:
    value = (q.get(name) or "").strip()
    if not value:
        return None
    if len(value) > MAX_VALUE or not value.isprintable():
        raise InvalidRequest(f"'{name}' must be printable text of at most {MAX_VALUE} "
                             "characters", param=name)
    return value


def _time(text: str, name: str, now: float) -> float:
    try:
        return parse_time(text, now=now)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}': {exc}", param=name) from None


@dataclass(frozen=True, slots=True)
class Filters:
    feature: str | None = None
    team: str | None = None
    model: str | None = None
    range: str = DEFAULT_RANGE
    since_text: str | None = None  # ``from`` as given
    until_text: str | None = None  # ``to`` as given

    @classmethod
    def read(cls, q: Mapping[str, str]) -> Filters:
        preset = (q.get("range") or "").strip() or DEFAULT_RANGE
        if preset not in RANGES:
            raise InvalidRequest(f"unknown range '{preset[:32]}'; use one of "
                                 f"{', '.join(RANGES)} (or from/to)", param="range")
        f = cls(feature=_text(q, "feature"), team=_text(q, "team"), model=_text(q, "model"),
                range=preset, since_text=_text(q, "from"), until_text=_text(q, "to"))
        f.window()  # a bad from/to is refused here, once
        return f

    def window(self, now: float | None = None) -> tuple[float, float]:
        """``(since, until)`` in UNIX seconds."""
        now = time.time() if now is None else now
        until = _time(self.until_text, "to", now) if self.until_text else now
        if self.since_text:
            since = _time(self.since_text, "from", now)
        else:
            since = until - RANGES[self.range]
        if until <= since:
            raise InvalidRequest("'to' must be after 'from'", param="to")
        return since, until

    def pairs(self, **changes: str | None) -> list[tuple[str, str]]:
        """The filter as query parameters, with ``changes`` applied (None removes one);
        the default range is left out, so plain links stay plain."""
        values: dict[str, str | None] = {
            "feature": self.feature, "team": self.team, "model": self.model,
            "range": None if self.range == DEFAULT_RANGE else self.range,
            "from": self.since_text, "to": self.until_text}
        values.update(changes)
        return [(k, v) for k, v in values.items() if v]

    def query(self, **changes: str | None) -> str:
        """``?feature=...&range=...`` (empty when nothing is set)."""
        pairs = self.pairs(**changes)
        return "?" + urlencode(pairs) if pairs else ""

    def with_team(self, team: str | None) -> Filters:
        return replace(self, team=team)

    @property
    def label(self) -> str:
        if self.since_text or self.until_text:
            return f"{self.since_text or 'start'} to {self.until_text or 'now'}"
        return f"last {self.range}"
