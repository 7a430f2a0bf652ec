"""The demo story's events each fire the matching signal, as keel serve's alert loop would
have found them (the loop replayed over the month's last days at load): the rework rise
after the prompt change, the fallbacks of the provider outage, the research assistant's cost
creep; each fires after its event and not before. A month of the default size: the demo's
rules are sized for it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from keel.demo.load import SIGNAL_DAYS, SIGNAL_STEP_S
from keel.demo.story import DAY, HOUR, SUPPORT
from keel.demo.traffic import DEFAULT_REQUESTS
from keel.monitor.alerts.manager import current
from keel.store import Store
from keel.store.alerts import list_events
from keel.store.drift import latest_reports
from tests.demo.conftest import Month, load_month


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Month:
    return load_month(tmp_path_factory.mktemp("demo-full") / "keel-demo",
                      now=time.time() - 60, requests=DEFAULT_REQUESTS, seed=5)


def _read(month: Month) -> tuple[list[dict], list[dict], dict]:
    async def go() -> tuple[list[dict], list[dict], dict]:
        store = Store(month.home.settings().resolved_database_url())
        try:
            events = await list_events(store, limit=1000)
            return (events, await current(store, month.now + 1),
                    await latest_reports(store, since=0, until=month.now + 1))
        finally:
            await store.aclose()

    return asyncio.run(go())


def _fired(events: list[dict], rule: str, **series: str) -> list[float]:
    return sorted(e["at"] for e in events if e["rule"] == rule and e["kind"] == "firing"
                  and all(e["evaluation"]["series"].get(k) == v for k, v in series.items()))


def test_each_story_event_fires_its_signal_after_it_and_not_before(full: Month) -> None:
    events, shown, reports = _read(full)
    tl = full.timeline
    start = full.now - SIGNAL_DAYS * DAY
    assert all(e["at"] >= start for e in events)

    rework = _fired(events, "support-rework-high")
    assert rework, "the rework rise after the prompt change fired nothing"
    assert tl.prompt_change < rework[0] <= tl.prompt_change + 3 * DAY

    outage = _fired(events, "fallbacks-taken", feature=SUPPORT)
    assert outage, "the outage's fallbacks fired nothing"
    assert tl.outage[0] <= outage[0] <= tl.outage[1] + SIGNAL_STEP_S
    assert all(tl.outage[0] <= t <= tl.outage[1] + 2 * HOUR for t in outage)

    creep = _fired(events, "research-cost-creep")
    assert creep, "the research assistant's cost creep fired nothing"
    assert tl.creep_from < creep[0] <= tl.creep_from + 7 * DAY

    by_key = {a["key"]: a for a in shown}
    assert by_key["fallbacks-taken|feature=support-assistant"]["phase"] == "inactive"
    assert by_key["support-rework-high"]["phase"] == "firing"  # v3 is still in production
    assert set(reports) == {"support-assistant", "contract-summariser", "research-assistant"}
