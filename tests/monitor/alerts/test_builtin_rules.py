"""Each built-in early warning fires on a synthetic history that has its pattern and stays
quiet on one that does not (several seeds each), written through the store on SQLite and
PostgreSQL and evaluated with every built-in at once: only the one meant fires."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from keel.config import AlertsConfig
from keel.monitor.alerts import Evaluation, evaluate, rules_for
from keel.store import Store

from .history import NOW, Slice, day, write

SEEDS = (0, 1, 2)
History = Callable[[random.Random], list[Slice]]


def steady_search(rng: random.Random) -> list[Slice]:
    """Another feature, the same both days: never a series that fires."""
    return [Slice(*day(d), 60, feature="search", cost_usd=0.004,
                  outcomes={"accepted": 24, "edited": 4, "escalated": 2}) for d in (0, 1)]


async def breaching(store: Store, slices: list[Slice], rng: random.Random) -> list[Evaluation]:
    await write(store, slices, rng)
    evaluations = await evaluate(store, rules_for(AlertsConfig()), NOW,
                                 value_units={"support": "ticket_resolved"})
    assert evaluations  # every built-in saw the two features
    return [e for e in evaluations if e.state.breaching]


def judged(rng: random.Random, **counts: tuple[int, int]) -> dict[str, int]:
    return {k: rng.randint(*v) for k, v in counts.items()}


# --- rework surge at stable volume -------------------------------------------------------

def rework_surge(rng: random.Random) -> list[Slice]:
    n = rng.randint(180, 220)
    return [Slice(*day(1), n, outcomes=judged(rng, edited=(5, 8), accepted=(52, 55))),
            Slice(*day(0), round(n * rng.uniform(0.93, 1.07)),
                  outcomes=judged(rng, edited=(18, 24), accepted=(36, 42)))]


def rework_steady(rng: random.Random) -> list[Slice]:
    n = rng.randint(180, 220)
    return [Slice(*day(d), n, outcomes=judged(rng, edited=(8, 10), accepted=(50, 52)))
            for d in (0, 1)]


def rework_up_with_volume(rng: random.Random) -> list[Slice]:
    n = rng.randint(180, 220)
    return [Slice(*day(1), n, outcomes=judged(rng, edited=(5, 8), accepted=(52, 55))),
            Slice(*day(0), 2 * n, outcomes=judged(rng, edited=(18, 24), accepted=(36, 42)))]


def rework_surge_too_few_judged(rng: random.Random) -> list[Slice]:
    n = rng.randint(180, 220)
    return [Slice(*day(1), n, outcomes=judged(rng, edited=(1, 1), accepted=(15, 18))),
            Slice(*day(0), n, outcomes=judged(rng, edited=(6, 8), accepted=(10, 12)))]


# --- unit cost creep without quality improvement -----------------------------------------

def cost_creep(rng: random.Random) -> list[Slice]:
    n, accepted = rng.randint(140, 160), rng.randint(28, 32)
    before = rng.uniform(0.009, 0.011)
    return [Slice(*day(1), n, cost_usd=before, outcomes={"accepted": accepted, "rejected": 10}),
            Slice(*day(0), n, cost_usd=before * rng.uniform(1.3, 1.45),
                  outcomes={"accepted": accepted - rng.randint(0, 3), "rejected": 10})]


def cost_steady(rng: random.Random) -> list[Slice]:
    n, cost = rng.randint(140, 160), rng.uniform(0.009, 0.011)
    return [Slice(*day(d), n, cost_usd=cost * rng.uniform(0.97, 1.03),
                  outcomes={"accepted": 30, "rejected": 10}) for d in (0, 1)]


def cost_up_with_acceptance(rng: random.Random) -> list[Slice]:
    n, before = rng.randint(140, 160), rng.uniform(0.009, 0.011)
    return [Slice(*day(1), n, cost_usd=before, outcomes={"accepted": 26, "rejected": 14}),
            Slice(*day(0), n, cost_usd=before * rng.uniform(1.3, 1.45),
                  outcomes={"accepted": rng.randint(33, 37), "rejected": 5})]


# --- cost per value unit -----------------------------------------------------------------

def value_unit_creep(rng: random.Random) -> list[Slice]:
    n, units = rng.randint(140, 160), rng.randint(48, 52)
    return [Slice(*day(1), n, value_units=units, outcomes={"accepted": 30, "rejected": 10}),
            Slice(*day(0), n, value_units=round(units * rng.uniform(0.6, 0.72)),
                  outcomes={"accepted": 30, "rejected": 10})]


def value_unit_steady(rng: random.Random) -> list[Slice]:
    n = rng.randint(140, 160)
    return [Slice(*day(d), n, value_units=rng.randint(48, 52),
                  outcomes={"accepted": 30, "rejected": 10}) for d in (0, 1)]


# --- escalation --------------------------------------------------------------------------

def escalation_rising(rng: random.Random) -> list[Slice]:
    n = rng.randint(100, 140)
    return [Slice(*day(1), n, outcomes=judged(rng, escalated=(4, 5), accepted=(45, 46))),
            Slice(*day(0), n, outcomes=judged(rng, escalated=(10, 13), accepted=(45, 46)))]


def escalation_steady(rng: random.Random) -> list[Slice]:
    n = rng.randint(100, 140)
    return [Slice(*day(d), n, outcomes=judged(rng, escalated=(5, 6), accepted=(45, 46)))
            for d in (0, 1)]


# --- one team's quality diverging from its feature's -------------------------------------

def team_divergence(rng: random.Random) -> list[Slice]:
    out = [Slice(*day(0), 60, team=t, outcomes=judged(rng, accepted=(31, 34), rejected=(6, 8)))
           for t in ("a", "b")]
    return [*out, Slice(*day(0), 60, team="c",
                        outcomes=judged(rng, accepted=(12, 16), rejected=(24, 26)))]


def teams_alike(rng: random.Random) -> list[Slice]:
    return [Slice(*day(0), 60, team=t, outcomes=judged(rng, accepted=(29, 34), rejected=(6, 9)))
            for t in ("a", "b", "c")]


FIRES: list[tuple[History, str, dict[str, str]]] = [
    (rework_surge, "keel.rework-surge", {"feature": "support"}),
    (cost_creep, "keel.unit-cost-creep", {"feature": "support"}),
    (value_unit_creep, "keel.value-unit-cost-creep", {"feature": "support"}),
    (escalation_rising, "keel.escalation-rising", {"feature": "support"}),
    (team_divergence, "keel.team-quality-divergence", {"feature": "support", "team": "c"}),
]
QUIET: list[History] = [rework_steady, rework_up_with_volume, rework_surge_too_few_judged,
                        cost_steady, cost_up_with_acceptance, value_unit_steady,
                        escalation_steady, teams_alike]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("history", "name", "series"), FIRES,
                         ids=[f[0].__name__ for f in FIRES])
async def test_a_builtin_fires_on_its_pattern(store: Store, history: History, name: str,
                                              series: dict[str, str], seed: int) -> None:
    rng = random.Random(seed)
    fired = await breaching(store, [*history(rng), *steady_search(rng)], rng)
    assert [(e.rule, e.series) for e in fired] == [(name, series)], [e.reason for e in fired]
    assert fired[0].reason and fired[0].n >= 30


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("history", QUIET, ids=[q.__name__ for q in QUIET])
async def test_builtins_stay_quiet_without_the_pattern(store: Store, history: History,
                                                       seed: int) -> None:
    rng = random.Random(seed)
    fired = await breaching(store, [*history(rng), *steady_search(rng)], rng)
    assert fired == [], [e.reason for e in fired]


async def test_a_held_back_surge_says_why(store: Store) -> None:
    rng = random.Random(0)
    await write(store, rework_up_with_volume(rng), rng)
    (ev,) = [e for e in await evaluate(store, rules_for(AlertsConfig()), NOW)
             if e.rule == "keel.rework-surge"]
    assert ev.state.value == "ok"
    assert ev.reason.endswith("on 60 judged answers; held back by the rule's when: "
                              "conditions: requests +100% (204 to 408)")
