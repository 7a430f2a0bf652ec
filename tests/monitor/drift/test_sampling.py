"""The reservoir: bounded, seeded, uniform."""

import pytest

from keel.monitor.drift.sampling import Reservoir


def test_a_short_stream_is_kept_whole() -> None:
    r: Reservoir[int] = Reservoir(10, seed=1)
    r.extend(range(7))
    assert r.items == list(range(7)) and r.seen == 7 and len(r) == 7


def test_a_long_stream_keeps_at_most_capacity_items_from_it() -> None:
    r: Reservoir[int] = Reservoir(500, seed=2)
    r.extend(range(200_000))
    items = r.items
    assert len(items) == 500 and len(set(items)) == 500 and r.seen == 200_000
    assert all(0 <= v < 200_000 for v in items)
    # a uniform sample of 0 .. 199,999: its mean is near 100,000 (sd of the mean ~2,600)
    assert 90_000 < sum(items) / 500 < 110_000
    assert max(items) > 190_000  # late items get in too


def test_the_same_seed_gives_the_same_sample() -> None:
    a: Reservoir[int] = Reservoir(50, seed=7)
    b: Reservoir[int] = Reservoir(50, seed=7)
    c: Reservoir[int] = Reservoir(50, seed=8)
    for v in range(10_000):
        a.add(v)
    b.extend(range(10_000))
    c.extend(range(10_000))
    assert a.items == b.items and a.items != c.items


def test_every_item_is_equally_likely_to_be_kept() -> None:
    counts = [0] * 40
    runs = 3000
    for seed in range(runs):
        r: Reservoir[int] = Reservoir(5, seed=seed)
        r.extend(range(40))
        for v in r.items:
            counts[v] += 1
    expected = runs * 5 / 40  # 375; binomial sd ~18
    assert all(abs(c - expected) < 80 for c in counts)
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 70  # chi-square with 39 df: p ~ 0.002


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Reservoir(0)
