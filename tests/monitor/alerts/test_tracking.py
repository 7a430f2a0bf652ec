"""The alert state machine, pure: pending until ``for`` consecutive breaches, firing until
``keep_firing_for`` consecutive clear evaluations, severity followed while firing, no data
holding a firing alert and breaking a pending one; tracks round-trip through dicts."""

from __future__ import annotations

import json

import pytest

from keel.monitor.alerts import Evaluation, Phase, State, Track, step, track_all

OK, W, A, ND = State.OK, State.WARNING, State.ALERT, State.NO_DATA


def run(states: list[State], for_: int = 1, keep: int = 1) -> tuple[Track, list[str]]:
    t = Track("r")
    kinds = []
    for i, s in enumerate(states):
        t, change = step(t, s, float(i), for_=for_, keep_firing_for=keep)
        kinds.append(change.kind if change else "-")
    return t, kinds


def test_for_one_fires_at_once_and_one_clear_resolves() -> None:
    t, kinds = run([OK, W, W, OK, OK])
    assert kinds == ["-", "firing", "-", "resolved", "-"]
    assert t.phase is Phase.INACTIVE and t.fired_at == 1.0


def test_pending_until_for_consecutive_breaches() -> None:
    t, kinds = run([W, W, W, W], for_=3)
    assert kinds == ["pending", "-", "firing", "-"]
    assert t.phase is Phase.FIRING and t.since == 2.0 and t.fired_at == 2.0


def test_a_clear_or_no_data_breaks_the_pending_streak() -> None:
    _, kinds = run([W, W, OK, W, W, ND, W, W, W], for_=3)
    assert kinds == ["pending", "-", "-", "pending", "-", "-", "pending", "-", "firing"]


def test_keep_firing_for_needs_consecutive_clears() -> None:
    t, kinds = run([A, OK, OK, A, OK, OK, OK], keep=3)
    assert kinds == ["firing", "-", "-", "-", "-", "-", "resolved"]
    assert t.phase is Phase.INACTIVE and t.severity is OK


def test_no_data_holds_a_firing_alert() -> None:
    t, kinds = run([A, ND, ND, ND, OK, OK], keep=2)
    assert kinds == ["firing", "-", "-", "-", "-", "resolved"]
    t, _ = run([A, ND, ND])
    assert t.phase is Phase.FIRING and t.severity is A
    t, _ = run([A, State.SILENCED, State.SILENCED])
    assert t.phase is Phase.FIRING


def test_severity_follows_the_latest_breach_while_firing() -> None:
    _, kinds = run([W, A, A, W, OK])
    assert kinds == ["firing", "escalated", "-", "deescalated", "resolved"]


def test_counts_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        step(Track("r"), W, 0.0, for_=0)


def test_tracks_and_evaluations_round_trip_through_json() -> None:
    t, _ = run([W, W], for_=2)
    again = Track.from_dict(json.loads(json.dumps(t.as_dict())))
    assert again == t
    ev = Evaluation("r", {"feature": "support"}, A, 0.3, 0.12, 240, "why", 0.0, 86400.0,
                    score=1.5, level=1.0, details={"baseline_n": 200})
    assert Evaluation.from_dict(json.loads(json.dumps(ev.as_dict()))) == ev
    assert ev.key == "r|feature=support"


def test_track_all_steps_each_series_with_its_rules_settings() -> None:
    def ev(rule: str, feature: str, state: State) -> Evaluation:
        return Evaluation(rule, {"feature": feature}, state, 1.0, 0.5, 100, "", 0.0, 60.0)

    tracks, changes = track_all({}, [ev("slow", "a", W), ev("slow", "b", OK),
                                     ev("fast", "a", A)], {"slow": (2, 1)}, at=10.0)
    assert [(c.key, c.kind) for c in changes] == [("slow|feature=a", "pending"),
                                                  ("fast|feature=a", "firing")]
    tracks, changes = track_all(tracks, [ev("slow", "a", W)], {"slow": (2, 1)}, at=70.0)
    assert [(c.key, c.kind, c.at) for c in changes] == [("slow|feature=a", "firing", 70.0)]
    assert tracks["fast|feature=a"].phase is Phase.FIRING  # not evaluated: kept
