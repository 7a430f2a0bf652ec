"""The costs page's reasoning without a browser: the sentence on what moved cost per
request (from the same measures ``compare`` gives), and a budget's burn-down projection."""

from __future__ import annotations

from collections import defaultdict

import pytest

from keel.console.pages.costs import Totals, project, what_changed
from keel.monitor.measures import measures
from keel.types import Price, Usage

SMALL = Price(input_per_mtok=1.0, output_per_mtok=4.0)
LARGE = Price(input_per_mtok=10.0, output_per_mtok=30.0)
PRICES: dict[str, Price | None] = {"m-small": SMALL, "m-large": LARGE}


def side(price: Price | None, requests: int, input_per: int, output_per: int,
         cache_hits: int = 0, cost_per: float | None = None) -> Totals:
    """One model's window as ``compare`` measures it: each request priced at ``price``
    (cache hits cost nothing), unless ``cost_per`` says what each billed request cost."""
    billed = requests - cache_hits
    each = cost_per if cost_per is not None else (
        price.cost(Usage(input_tokens=input_per, output_tokens=output_per)) if price else 0.0)
    counters: defaultdict[str, float] = defaultdict(float)
    counters.update(requests=requests, input_tokens=requests * input_per,
                    output_tokens=requests * output_per, cost_usd=billed * each,
                    cache_hits=cache_hits)
    return Totals.of(measures({"halves": [counters, defaultdict(float)],
                               "sketch": {"latency": [], "ttft": []}, "errors": {}}, None))


def total(*parts: Totals) -> Totals:
    return Totals(*(sum(getattr(p, f) for p in parts) for f in
                    ("requests", "input_tokens", "output_tokens", "cost_usd", "cache_hits")))


def explain(models: dict[str, tuple[Totals, Totals]],
            prices: dict[str, Price | None] = PRICES) -> tuple[str, bool]:
    before = total(*(b for b, _ in models.values()))
    after = total(*(a for _, a in models.values()))
    return what_changed(before, after, models, prices)


def test_longer_prompts_are_named_when_they_raise_cost_per_request() -> None:
    models = {"m-small": (side(SMALL, 800, 410, 100), side(SMALL, 800, 690, 100)),
              "m-large": (side(LARGE, 200, 410, 100), side(LARGE, 205, 690, 100))}
    sentence, rose = explain(models)
    assert rose
    assert sentence == (
        "Cost per request rose 40% ($0.0021 → $0.0029) while volume was flat: input tokens "
        "per request grew from 410 to 690 (prompts got longer); the model mix did not change.")


def test_a_move_to_a_dearer_model_is_named_with_its_shares() -> None:
    models = {"m-small": (side(SMALL, 900, 400, 100), side(SMALL, 500, 400, 100)),
              "m-large": (side(LARGE, 100, 400, 100), side(LARGE, 500, 400, 100))}
    sentence, rose = explain(models)
    assert rose
    assert sentence == (
        "Cost per request rose 175% ($0.0014 → $0.0039) while volume was flat: the model mix "
        "moved toward m-large (10% → 50% of requests, 49% → 90% of spend); tokens per request "
        "held steady.")


def test_longer_answers_and_volume_growth() -> None:
    models = {"m-small": (side(SMALL, 500, 300, 100), side(SMALL, 800, 300, 250))}
    sentence, _ = explain(models)
    assert sentence == (
        "Cost per request rose 86% ($0.0007 → $0.0013) while volume grew 60%: output tokens "
        "per request grew from 100 to 250 (answers got longer); the model mix did not change.")


def test_both_kinds_of_tokens_are_named_when_both_matter() -> None:
    models = {"m-small": (side(SMALL, 500, 1000, 100), side(SMALL, 500, 2000, 300))}
    sentence, _ = explain(models)
    assert ("input tokens per request grew from 1,000 to 2,000 (prompts got longer); and "
            "output tokens per request grew from 100 to 300 (answers got longer)") in sentence


def test_shorter_prompts_lower_cost_per_request() -> None:
    models = {"m-small": (side(SMALL, 400, 2000, 50), side(SMALL, 380, 900, 50))}
    sentence, rose = explain(models)
    assert not rose
    assert sentence.startswith("Cost per request fell 50% ($0.0022 → $0.0011) while volume "
                               "was flat: input tokens per request fell from 2,000 to 900 "
                               "(prompts got shorter)")


def test_a_rise_nothing_here_explains_is_said_so() -> None:
    # same tokens, same mix, dearer requests: the price changed (or was repriced)
    models = {"m-small": (side(SMALL, 400, 500, 100), side(SMALL, 400, 500, 100,
                                                           cost_per=0.0015))}
    sentence, rose = explain(models)
    assert rose
    assert sentence == (
        "Cost per request rose 67% ($0.0009 → $0.0015) while volume was flat: neither prompt "
        "length, answer length nor the model mix explains it (input tokens per request 500 → "
        "500, output 100 → 100); the model mix did not change; did a price change? (see the "
        "repricing events).")


def test_fewer_cache_hits_are_named_when_tokens_and_mix_do_not_explain_a_rise() -> None:
    models = {"m-small": (side(SMALL, 400, 500, 100, cache_hits=200),
                          side(SMALL, 400, 500, 100, cache_hits=20))}
    sentence, _ = explain(models)
    assert "neither prompt length, answer length nor the model mix explains it" in sentence
    assert sentence.endswith("cache hits fell from 50% to 5% of requests.")


def test_a_model_without_a_price_is_explained_by_its_tokens() -> None:
    models = {"a-route": (side(None, 300, 400, 100, cost_per=0.001),
                          side(None, 300, 800, 100, cost_per=0.0018))}
    sentence, _ = explain(models, {"a-route": None})
    assert "tokens per request grew (input tokens per request 400 → 800, output 100 → 100)" \
        in sentence


def test_spend_that_follows_volume_is_not_a_unit_cost_change() -> None:
    models = {"m-small": (side(SMALL, 400, 500, 100), side(SMALL, 600, 500, 100))}
    sentence, rose = explain(models)
    assert not rose
    assert sentence == ("Spend rose 50% with the volume (volume grew 50%); cost per request "
                        "held at $0.0009.")
    steady, _ = explain({"m-small": (side(SMALL, 400, 500, 100), side(SMALL, 410, 500, 100))})
    assert steady == ("Cost per request held at $0.0009 ($0.0009 before) and volume was "
                      "flat.")


@pytest.mark.parametrize(("before", "after", "says"), [
    (side(SMALL, 0, 0, 0), side(SMALL, 50, 100, 10), "No requests in the previous window"),
    (side(SMALL, 50, 100, 10), side(SMALL, 0, 0, 0), "No requests in this window."),
    (side(SMALL, 5, 100, 10), side(SMALL, 50, 100, 10), "Too few requests to say what changed "
     "(5 in the previous window, 50 in this one; it takes 20 in each)."),
    (side(None, 50, 100, 10), side(None, 50, 100, 10), "Nothing was spent in either window"),
    (side(None, 50, 100, 10), side(SMALL, 50, 100, 10), "Nothing was spent in the previous"),
])
def test_too_little_to_compare_is_said_plainly(before: Totals, after: Totals, says: str) -> None:
    sentence, rose = what_changed(before, after, {"m-small": (before, after)}, PRICES)
    assert sentence.startswith(says) and not rose


def test_the_burn_down_projects_the_rate_so_far_to_the_period_end() -> None:
    day = 86400.0
    # a quarter of the way through, 40 of 100 spent: on pace for 160, the limit reached
    # at 62.5% of the period
    plan = project(40.0, 100.0, 0.0, 4 * day, day)
    assert plan.elapsed == pytest.approx(0.25) and plan.line == pytest.approx(25.0)
    assert plan.projected == pytest.approx(160.0) and plan.over
    assert plan.limit_at == pytest.approx(2.5 * day)
    calm = project(10.0, 100.0, 0.0, 4 * day, 2 * day)
    assert calm.projected == pytest.approx(20.0) and not calm.over and calm.limit_at is None
    spent = project(120.0, 100.0, 0.0, 4 * day, 2 * day)
    assert spent.over and spent.limit_at is None  # already past the limit
    forever = project(10.0, 100.0, 0.0, None, 2 * day)
    assert forever.elapsed is None and forever.projected is None and not forever.over
