"""An alert's life across evaluations: pure, no store, no clock of its own.

Per rule and series a ``Track`` holds the phase and the streaks::

    inactive --breach--> pending --(for: consecutive breaches)--> firing
    pending  --clear or no data--> inactive
    firing   --(keep_firing_for: consecutive clear evaluations)--> inactive (resolved)

``for: 1`` fires on the first breaching evaluation. A breach is WARNING or ALERT; while
firing, the severity follows the latest breach (a move between them is an ``escalated`` or
``deescalated`` transition). NO_DATA (and SILENCED, set on top by silences) neither
breaches nor clears: a pending alert falls back (its breaches were not consecutive), a firing
one holds. A ``Track`` is a flat dict through ``as_dict`` / ``from_dict``, so it can be
stored as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from keel.monitor.alerts.model import Evaluation, State

__all__ = ["Phase", "Track", "Transition", "step", "track_all"]


class Phase(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class Track:
    key: str  # Evaluation.key: the rule and the series
    phase: Phase = Phase.INACTIVE
    severity: State = State.OK  # WARNING or ALERT while pending or firing
    breaches: int = 0  # consecutive breaching evaluations
    clears: int = 0  # consecutive clear evaluations while firing
    since: float | None = None  # when the phase began
    fired_at: float | None = None
    last_at: float | None = None  # the latest evaluation
    last_state: State = State.OK

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(phase=self.phase.value, severity=self.severity.value,
                   last_state=self.last_state.value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Track:
        return cls(**{**data, "phase": Phase(data["phase"]), "severity": State(data["severity"]),
                      "last_state": State(data["last_state"])})


@dataclass(frozen=True, slots=True)
class Transition:
    key: str
    kind: str  # pending | firing | escalated | deescalated | resolved
    at: float
    severity: State


def step(track: Track, state: State, at: float, *, for_: int = 1,
         keep_firing_for: int = 1) -> tuple[Track, Transition | None]:
    """The track after one evaluation in ``state`` at ``at``, and what changed, if anything."""
    if for_ < 1 or keep_firing_for < 1:
        raise ValueError("for_ and keep_firing_for count evaluations: at least 1")
    t = replace(track, last_at=at, last_state=state)
    if state.breaching:
        t = replace(t, breaches=t.breaches + 1, clears=0)
        if t.phase is Phase.FIRING:
            if state != t.severity:
                kind = "escalated" if state is State.ALERT else "deescalated"
                return replace(t, severity=state), Transition(t.key, kind, at, state)
            return t, None
        if t.breaches >= for_:
            return (replace(t, phase=Phase.FIRING, severity=state, since=at, fired_at=at),
                    Transition(t.key, "firing", at, state))
        if t.phase is Phase.INACTIVE:
            return (replace(t, phase=Phase.PENDING, severity=state, since=at),
                    Transition(t.key, "pending", at, state))
        return replace(t, severity=state), None
    if state is State.OK:
        if t.phase is Phase.FIRING:
            t = replace(t, clears=t.clears + 1, breaches=0)
            if t.clears >= keep_firing_for:
                return (replace(t, phase=Phase.INACTIVE, severity=State.OK, clears=0, since=at),
                        Transition(t.key, "resolved", at, State.OK))
            return t, None
        return replace(t, phase=Phase.INACTIVE, severity=State.OK, breaches=0,
                       since=at if t.phase is not Phase.INACTIVE else t.since), None
    # NO_DATA or SILENCED: neither a breach nor a clear
    if t.phase is Phase.PENDING:
        return replace(t, phase=Phase.INACTIVE, severity=State.OK, breaches=0, since=at), None
    return t, None


def track_all(tracks: Mapping[str, Track], evaluations: Iterable[Evaluation],
              settings: Mapping[str, tuple[int, int]], at: float) -> tuple[dict[str, Track],
                                                                          list[Transition]]:
    """Step every evaluation's track (new series start inactive), evaluated at ``at``.
    ``settings`` maps a rule name to its (for, keep_firing_for). Tracks of series not
    evaluated are kept as they are."""
    out = dict(tracks)
    changes: list[Transition] = []
    for ev in evaluations:
        for_, keep = settings.get(ev.rule, (1, 1))
        t, change = step(out.get(ev.key, Track(ev.key)), ev.state, at, for_=for_,
                         keep_firing_for=keep)
        out[ev.key] = t
        if change is not None:
            changes.append(change)
    return out, changes
