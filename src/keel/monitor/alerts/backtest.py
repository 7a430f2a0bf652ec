"""A rule tested against history: evaluated at every step of a past period, as the alert
loop would have, with its tracks carried from step to step, so ``for`` and
``keep_firing_for`` count as they would have. What comes back is each series' transitions
and how much of the period it spent breaching and firing: whether a new rule would have
caught what it is meant to, and how often it would have paged.

Bounded: at most ``MAX_STEPS`` evaluations (each reads the rollups, never the traces).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from keel.config.alerts import AlertRule
from keel.errors import InvalidRequest
from keel.monitor.alerts.evaluate import evaluate
from keel.monitor.alerts.tracking import Phase, Track, Transition, track_all
from keel.store import Store

__all__ = ["MAX_STEPS", "Backtest", "SeriesHistory", "backtest"]

MAX_STEPS = 1000


@dataclass(slots=True)
class SeriesHistory:
    key: str
    rule: str
    series: dict[str, str]
    evaluations: int = 0
    breaching: int = 0
    firing: int = 0  # evaluations that ended firing
    transitions: list[Transition] = field(default_factory=list)

    @property
    def fired(self) -> int:
        return sum(1 for t in self.transitions if t.kind == "firing")


@dataclass(slots=True)
class Backtest:
    since: float
    until: float
    step_s: float
    steps: int
    series: list[SeriesHistory]


async def backtest(store: Store, rules: Sequence[AlertRule], since: float, until: float, *,
                   step_s: float, value_units: dict[str, str] | None = None) -> Backtest:
    if until <= since:
        raise InvalidRequest("the period must end after it starts", param="until")
    if step_s < 60:
        raise InvalidRequest("step is at least a minute", param="step")
    steps = int((until - since) // step_s)
    if steps < 1:
        raise InvalidRequest("the period is shorter than one step", param="step")
    if steps > MAX_STEPS:
        raise InvalidRequest(f"{steps} steps is more than {MAX_STEPS}: take a longer step or "
                             "a shorter period", param="step")
    settings = {r.name: (r.for_, r.keep_firing_for) for r in rules}
    tracks: dict[str, Track] = {}
    history: dict[str, SeriesHistory] = {}
    for i in range(1, steps + 1):
        at = since + i * step_s
        found = await evaluate(store, rules, at, value_units=value_units)
        tracks, changes = track_all(tracks, found, settings, at)
        for ev in found:
            h = history.get(ev.key)
            if h is None:
                h = history[ev.key] = SeriesHistory(ev.key, ev.rule, ev.series)
            h.evaluations += 1
            h.breaching += ev.state.breaching
            h.firing += tracks[ev.key].phase is Phase.FIRING
        for change in changes:
            history[change.key].transitions.append(change)
    ordered = sorted(history.values(), key=lambda h: (-h.fired, -h.breaching, h.key))
    return Backtest(since, since + steps * step_s, step_s, steps, ordered)
