"""Retry delays: the exponential step, its cap, and each jitter's range."""

from __future__ import annotations

import math
import random

import pytest

from keel.backoff import Backoff


def test_without_jitter_the_delay_doubles_from_base_up_to_the_cap() -> None:
    b = Backoff(base=0.05, cap=5.0)
    assert [b.delay(n) for n in range(9)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert Backoff(base=0.25, factor=3.0).delay(2) == 0.25 * 9


def test_a_huge_attempt_number_gives_the_cap_not_an_overflow() -> None:
    assert Backoff(base=0.25, cap=8.0).delay(5000) == 8.0
    assert Backoff(base=0.25).delay(5000) == math.inf
    assert Backoff(base=0.25, jitter="equal").delay(5000) == math.inf
    assert Backoff(base=0.25, cap=8.0).delay(-3) == 0.25  # before the first: the first


@pytest.mark.parametrize(("jitter", "low", "high"), [
    ("full", 0.0, 1.0), ("equal", 0.5, 1.0), ("proportional", 0.75, 1.25)])
def test_each_jitter_stays_in_its_range_of_the_step(jitter: str, low: float,
                                                    high: float) -> None:
    rng = random.Random(3)
    b = Backoff(base=0.1, cap=100.0, jitter=jitter)  # type: ignore[arg-type]
    for attempt in range(6):
        step = 0.1 * 2 ** attempt
        draws = [b.delay(attempt, rng) for _ in range(2000)]
        assert all(low * step <= d <= high * step for d in draws), attempt
        # spread over the range, not stuck at one end of it
        assert min(draws) < (low + (high - low) * 0.1) * step
        assert max(draws) > (high - (high - low) * 0.1) * step


def test_jitter_never_exceeds_the_cap() -> None:
    rng = random.Random(5)
    for jitter in ("full", "equal", "proportional"):
        b = Backoff(base=1.0, cap=3.0, jitter=jitter)
        assert max(b.delay(6, rng) for _ in range(500)) <= 3.0


def test_equal_jitter_matches_half_fixed_half_uniform_from_the_same_generator() -> None:
    """The form the gateway's retries use: step / 2 + uniform(0, step / 2)."""
    b = Backoff(base=0.1, cap=2.0, jitter="equal")
    mine, theirs = random.Random(11), random.Random(11)
    for attempt in range(8):
        step = min(0.1 * float(2 ** attempt), 2.0)
        assert b.delay(attempt, mine) == step / 2 + theirs.uniform(0, step / 2)


def test_a_given_generator_makes_the_delays_reproducible() -> None:
    b = Backoff(base=0.5, jitter="full")
    assert [b.delay(n, random.Random(1)) for n in range(4)] == \
        [b.delay(n, random.Random(1)) for n in range(4)]


@pytest.mark.parametrize("kwargs", [
    {"base": -1.0}, {"base": 1.0, "factor": 0.5}, {"base": 1.0, "cap": -1.0},
    {"base": 1.0, "jitter": "wobbly"}, {"base": 1.0, "spread": 1.5}])
def test_nonsense_parameters_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]
