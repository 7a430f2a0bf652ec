"""The same seed gives the same month: two loads tell the story with the same numbers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from keel.demo.load import read_facts
from keel.demo.story import Timeline
from keel.demo.traffic import plan
from tests.demo.conftest import load_month


def rounded(value: Any) -> Any:
    """The facts with sums of money to 9 decimals (rollups add in whatever order traces
    land) and without ids (random by design)."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items() if k != "trace_id"}
    if isinstance(value, float):
        return round(value, 9)
    return value


def test_two_loads_with_the_same_seed_tell_the_same_story(tmp_path: Path) -> None:
    now = time.time() - 60
    facts = []
    for name in ("first", "second"):
        m = load_month(tmp_path / name, now=now, requests=400, seed=5)
        facts.append(rounded(asyncio.run(read_facts(m.home))))
    assert facts[0] == facts[1]
    story = facts[0]
    assert story["rework"]["after"] > story["rework"]["before"]
    assert story["outage"]["fallbacks"] > 0 and story["outage"]["failed"] == 0
    assert story["injection"]["blocked"] == 2
    assert story["reviews"]["story_rejection"]["by"] == "dana.okafor"


def test_another_seed_plans_another_month() -> None:
    tl = Timeline.ending(time.time())
    a, b, c = plan(5, 400, tl), plan(5, 400, tl), plan(6, 400, tl)

    def shape(sessions: list[Any]) -> list[tuple[Any, ...]]:
        return [(s.kind, s.team, s.start, [t.text for t in s.turns]) for s in sessions]

    assert shape(a) == shape(b)
    assert shape(a) != shape(c)
    assert abs(sum(len(s.turns) for s in a) - 400) <= 5
