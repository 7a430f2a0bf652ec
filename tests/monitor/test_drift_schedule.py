"""Drift checked on a schedule: one replica per tick checks every feature and stores the
report; the built-in keel.drift rule reads each feature's latest report, in alert when the
traffic shifted and ok when it did not; a stale report is no data. On SQLite and
PostgreSQL, with traces written through keel's write path."""

from __future__ import annotations

import pytest

from keel.config import parse_config
from keel.monitor.alerts import State, evaluate
from keel.monitor.alerts.builtin_rules import DRIFT
from keel.monitor.drift_schedule import DriftMonitor
from keel.store import Store
from keel.store.drift import latest_reports, list_reports

from .test_drift_windows import DAY, NOW, fill


def config(**drift: object) -> object:
    return parse_config({"providers": [{"name": "mock", "kind": "mock"}],
                         "models": [{"name": "m1", "provider": "mock"}],
                         "features": [{"name": "support"}, {"name": "search"}],
                         "drift": {"sample": 200, **drift}}, "keel.yaml")


@pytest.mark.parametrize("shifted", [False, True])
async def test_a_scheduled_check_stores_the_report_and_the_rule_reads_it(
        store: Store, shifted: bool) -> None:
    await fill(store, shifted)
    a = DriftMonitor(store, config(), replica="a")  # type: ignore[arg-type]
    b = DriftMonitor(store, config(), replica="b")  # type: ignore[arg-type]
    rows = await a.tick(NOW)
    assert rows is not None and await b.tick(NOW + 60) is None  # the same hour: a's tick
    by_feature = {r["feature"]: r for r in rows}
    assert set(by_feature) == {"support", "search"}
    support = by_feature["support"]
    assert support["drifted"] is shifted
    assert 150 <= support["n_reference"] <= 200 and 100 <= support["n_current"] <= 200
    assert support["report"]["windows"]["current"] == [NOW - DAY, NOW]
    assert by_feature["search"]["drifted"] is None  # no traffic: no verdict
    assert (await list_reports(store, "support"))[0]["id"] == support["id"]

    found = {e.series["feature"]: e for e in await evaluate(store, [DRIFT], NOW + 60)}
    assert found["support"].state is (State.ALERT if shifted else State.OK)
    assert found["support"].value == (1.0 if shifted else 0.0)
    if shifted:
        assert found["support"].reason.startswith("drift in ")
        assert "texts" in found["support"].reason
    else:
        assert found["support"].reason.startswith("no drift found")
    assert found["search"].state is State.OK  # no data, and keel.drift says no_data: ok
    assert "too little data" in found["search"].reason
    stale = await evaluate(store, [DRIFT], NOW + 3 * DAY)
    assert stale == []  # reports older than two days are not read
    assert set(await latest_reports(store, since=0, until=NOW + 1)) == {"support", "search"}


def test_the_drift_section_is_checked() -> None:
    from keel.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        config(interval="1m", current="soon", features=["nope"])
    text = str(info.value)
    assert "drift.interval" in text and "drift.current" in text
    with pytest.raises(ConfigError) as info:
        parse_config({"features": [{"name": "support"}], "drift": {"features": ["nope"]}},
                     "keel.yaml")
    assert "drift.features[0]: no feature named 'nope'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_config({"alerts": {"rules": [{"name": "d", "measure": "drift", "kind": "change",
                                            "warning": 0.5, "scope": {"by": "team"}}]}},
                     "keel.yaml")
    assert "kind: threshold" in str(info.value) and "per feature" in str(info.value)
