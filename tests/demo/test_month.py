"""The demo's month, read back through the admin API and the store as a user would find
it: three features with their value units, 30 days of seasonal traffic, and the five
parts of the story."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from typing import Any

import httpx

from keel.demo.load import demo_config
from keel.demo.story import (
    CONTRACTS,
    DAY,
    FALLBACK_MODEL,
    HOUR,
    MODEL,
    RESEARCH,
    STORY_REJECTION,
    STORY_REVIEWER,
    SUPPORT,
)
from keel.store import Store
from keel.store.feedback import OutcomeFilter, list_outcomes
from tests.demo.conftest import Month


def summary(api: httpx.Client, since: float, until: float, **params: str) -> dict[str, Any]:
    r = api.get("/api/metrics/summary", params={"from": since, "to": until, **params})
    assert r.status_code == 200, r.text
    return r.json()


def one(data: dict[str, Any]) -> dict[str, Any]:
    (group,) = data["groups"]
    return group


def traces(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = api.get("/api/traces", params={**params, "limit": 500,
                                           **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        rows += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return rows


def test_three_features_each_with_its_value_unit(month: Month, api: httpx.Client) -> None:
    tl = month.timeline
    groups = {g["feature"]: g for g in summary(api, tl.start, tl.end,
                                               group_by="feature")["groups"]}
    assert {SUPPORT, CONTRACTS, RESEARCH} <= set(groups)
    units = {f.name: f.value_unit for f in demo_config().features}
    assert units == {SUPPORT: "ticket_resolved", CONTRACTS: "contract_reviewed",
                     RESEARCH: "answer_accepted"}
    for feature in (SUPPORT, CONTRACTS, RESEARCH):
        assert groups[feature]["requests"] > 0
        assert groups[feature]["value_units"] > 0, feature
        assert groups[feature]["cost_per_value_unit_usd"] > 0
    # the support assistant's requests carry its tools; the research assistant's its passages
    support = traces(api, feature=SUPPORT, since=tl.end - 2 * DAY)
    detail = api.get(f"/api/traces/{support[0]['id']}").json()
    assert {t["function"]["name"] for t in detail["request"]["tools"]} == {
        "lookup_order", "escalate_to_human"}
    research = api.get(f"/api/traces/{traces(api, feature=RESEARCH)[0]['id']}").json()
    assert "Passages:\n\n[1] " in research["request"]["messages"][-1]["content"]


def test_traffic_spans_the_thirty_days_with_daily_and_weekly_seasonality(
        month: Month, api: httpx.Client) -> None:
    tl = month.timeline
    rows = [t for t in traces(api, since=tl.start - DAY) if t["team"] != "eval"]
    times = sorted(t["start_time"] for t in rows)
    assert times[0] >= tl.start and times[-1] <= tl.end
    assert times[0] < tl.start + DAY and times[-1] > tl.end - DAY
    days = {int((t - tl.start) // DAY) for t in times}
    assert days == set(range(30))
    weekday: dict[bool, list[float]] = defaultdict(list)
    hours: dict[int, int] = defaultdict(int)
    for t in times:
        d = dt.datetime.fromtimestamp(t, dt.UTC)
        weekday[d.weekday() >= 5].append(t)
        hours[d.hour] += 1
    weekend_days = {int((t - tl.start) // DAY) for t in weekday[True]}
    weekdays = {int((t - tl.start) // DAY) for t in weekday[False]}
    assert len(weekday[True]) / len(weekend_days) < 0.6 * len(weekday[False]) / len(weekdays)
    by_hour = [hours[h] for h in range(24)]
    assert max(by_hour) > 3 * max(min(by_hour), 1)  # the day's peak against the night
    assert by_hour.index(max(by_hour)) in range(8, 22)
    # ids sort by the simulated time, as they do by the real one
    assert [t["id"] for t in sorted(rows, key=lambda t: (t["start_time"], t["id"]))] == \
        sorted(t["id"] for t in rows)


def test_rework_rose_from_the_day_the_prompt_version_changed(
        month: Month, api: httpx.Client) -> None:
    tl = month.timeline
    prompts = api.get("/api/prompts").json()["data"]
    support = next(p for p in prompts if p["name"] == "support-reply")
    assert support["versions"] == 3 and support["labels"]["production"] == 3
    change_day = tl.prompt_change // DAY * DAY
    before = one(summary(api, tl.start, change_day, feature=SUPPORT))
    after = one(summary(api, change_day + DAY, tl.end, feature=SUPPORT))
    assert before["rework_rate"] is not None and after["rework_rate"] is not None
    assert after["rework_rate"] > before["rework_rate"] + 0.1
    assert after["mean_rework"] > before["mean_rework"]
    by_prompt = {g["prompt"]: g for g in summary(api, tl.start, tl.end, feature=SUPPORT,
                                                 group_by="prompt")["groups"]}
    assert by_prompt["support-reply@3"]["rework_rate"] > by_prompt["support-reply@2"][
        "rework_rate"]
    # conversations that started before the change used version 2, the later ones 3
    assert {t["prompt_version"] for t in traces(api, feature=SUPPORT, until=tl.prompt_change)
            } == {2}
    assert {t["prompt_version"] for t in traces(api, feature=SUPPORT,
                                                since=tl.prompt_change + HOUR)} == {3}


def test_the_outage_was_absorbed_by_the_fallback(month: Month, api: httpx.Client) -> None:
    tl = month.timeline
    start, end = tl.outage
    during = [t for t in traces(api, since=start, until=end) if t["route"] == "assistant"]
    assert during
    assert all(t["status"] == 200 for t in during)
    called = [t for t in during if not t["cache_hit"]]
    assert called and all(t["model_served"] == FALLBACK_MODEL for t in called)
    assert all(t["attempts"] == 2 for t in called)  # the primary first, then the fallback
    detail = api.get(f"/api/traces/{called[0]['id']}").json()
    first, last = detail["attempt_log"][0], detail["attempt_log"][-1]
    assert first["model"] == MODEL and first["status"] >= 500
    assert last["model"] == FALLBACK_MODEL and last["status"] == 200
    assert one(summary(api, start, end))["availability"] == 1.0
    # before and after it, the primary answered
    for since, until in ((start - 6 * HOUR, start), (end, end + 6 * HOUR)):
        around = [t for t in traces(api, since=since, until=until)
                  if t["route"] == "assistant" and not t["cache_hit"]]
        assert around and all(t["model_served"] == MODEL for t in around)


def test_unit_cost_rose_over_the_last_two_weeks_at_flat_volume(
        month: Month, api: httpx.Client) -> None:
    tl = month.timeline
    before = one(summary(api, tl.end - 28 * DAY, tl.creep_from, feature=RESEARCH))
    after = one(summary(api, tl.creep_from, tl.end, feature=RESEARCH))
    assert after["cost_per_request_usd"] > 1.3 * before["cost_per_request_usd"]
    assert abs(after["requests"] - before["requests"]) <= 0.15 * before["requests"]
    per_request = [g["tokens"]["input"] / g["requests"] for g in (before, after)]
    assert per_request[1] > 1.5 * per_request[0]  # longer prompts


def test_a_prompt_injection_was_blocked(month: Month, api: httpx.Client) -> None:
    tl = month.timeline
    blocked = [t for t in traces(api, feature=SUPPORT, since=tl.injection - HOUR,
                                 until=tl.injection + HOUR)
               if any(h["scanner"] == "injection" and h["action"] == "block"
                      for h in t["guard"] or ())]
    assert len(blocked) == 2
    detail = api.get(f"/api/traces/{blocked[0]['id']}").json()
    assert detail["policy"] == "support-guard"
    assert detail["response"]["choices"][0]["finish_reason"] == "content_filter"
    assert detail["tags"]["keel.safe_reply"] == "support-guard"
    assert detail["attempts"] == 0  # never reached a provider


def test_a_reviewer_rejected_a_summary_and_some_wait(month: Month, api: httpx.Client) -> None:
    rejected = api.get("/api/reviews", params={"status": "rejected", "limit": 500}).json()
    story = [r for r in rejected["data"] if r["decision"]["by"] == STORY_REVIEWER
             and r["decision"]["reason"] == STORY_REJECTION]
    assert len(story) == 1
    assert story[0]["feature"] == CONTRACTS and story[0]["policy"] == "contract-review"
    tl = month.timeline
    assert tl.story_contract < story[0]["decision"]["at"] < tl.end
    pending = api.get("/api/reviews", params={"status": "pending"}).json()["data"]
    assert len(pending) >= 3
    assert all(r["expires_at"] > tl.end for r in pending)
    # the rejection is also the reviewer's feedback on the trace
    feedback = api.get("/api/feedback", params={"trace_id": story[0]["trace_id"]}).json()
    assert [(f["source"], f["outcome"], f["comment"]) for f in feedback["data"]] == [
        ("reviewer", "rejected", STORY_REJECTION)]


def test_feedback_and_outcomes_are_dated_in_the_month(month: Month) -> None:
    tl = month.timeline

    async def read() -> list[dict[str, Any]]:
        store = Store(month.home.settings().resolved_database_url())
        try:
            return await list_outcomes(store, OutcomeFilter(), 1000)
        finally:
            await store.aclose()

    outcomes = asyncio.run(read())
    assert outcomes
    assert all(tl.start <= o["at"] <= tl.end for o in outcomes)
    assert min(o["at"] for o in outcomes) < tl.start + 3 * DAY
