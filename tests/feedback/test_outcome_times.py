"""``since`` and ``until`` on ``GET /api/outcomes`` take every form the other /api routes take:
epoch seconds, ISO 8601 dates and times, and durations back from now (2h, 7d, 1w)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.feedback.test_feedback import error, get, post
from tests.support.keel import Keel, running_keel

HOUR = 3600.0
DAY = 24 * HOUR


@pytest.fixture
def keel(tmp_path: Path, database_url: str) -> Iterator[Keel]:
    with running_keel(tmp_path, database_url=database_url) as k:
        yield k


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_outcomes_are_listed_by_every_time_form(keel: Keel) -> None:
    now = time.time()
    ages = {"an hour ago": HOUR, "three days ago": 3 * DAY, "ten days ago": 10 * DAY}
    for name, age in ages.items():
        r = post(keel, "/api/outcomes", {"name": "ticket_resolved", "feature": "support",
                                         "id": name.replace(" ", "-"), "at": now - age})
        assert r.status_code == 201, r.text

    def listed(**params: str) -> list[str]:
        r = get(keel, "/api/outcomes", feature="support", **params)
        assert r.status_code == 200, (params, r.text)
        return [o["id"] for o in r.json()["data"]]

    assert listed(since="2h") == ["an-hour-ago"]
    assert listed(since="7d") == ["an-hour-ago", "three-days-ago"]
    assert listed(since="1w", until="2h") == ["three-days-ago"]
    assert listed(since="2w") == ["an-hour-ago", "three-days-ago", "ten-days-ago"]
    assert listed(since=iso(now - 4 * DAY), until=iso(now - 2 * DAY)) == ["three-days-ago"]
    assert listed(since=dt.datetime.fromtimestamp(now - 4 * DAY, dt.UTC).date().isoformat(),
                  until="1d") == ["three-days-ago"]
    assert listed(since=str(int(now - 11 * DAY)), until=str(int(now - 9 * DAY))) \
        == ["ten-days-ago"]


def test_a_time_outcomes_cannot_read_is_a_400_showing_the_forms(keel: Keel) -> None:
    for param in ("since", "until"):
        r = get(keel, "/api/outcomes", feature="support", **{param: "last tuesday"})
        assert r.status_code == 400 and error(r)["param"] == param
        assert "7d" in error(r)["message"] and "ISO" in error(r)["message"]
