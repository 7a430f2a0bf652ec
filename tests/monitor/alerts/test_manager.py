"""The alert loop on a real store (SQLite and PostgreSQL) with a real webhook receiver on
loopback: a tick evaluates, tracks and notifies once; a group is not re-sent until
repeat_interval; silences keep it quiet but visible; a resolution is sent; of two replicas
one evaluates each tick; the built-in inhibition mutes an outage's effects."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from keel.config import parse_config
from keel.monitor.alerts.manager import AlertManager, current
from keel.notify.dispatch import Dispatcher
from keel.notify.signing import verify
from keel.store import Store
from keel.store.alerts import add_silence, last_ticks, lift_silence, list_events
from tests.notify.receivers import HttpReceiver

from .history import HOUR, NOW, Slice, hour, write

SECRET = "alerts-secret-0123456789abcdef"
ERRORS = {"name": "errors", "measure": "error_rate", "warning": 0.1, "critical": 0.25,
          "scope": {"by": "feature"}, "no_data": "ok"}


@pytest.fixture
async def http() -> AsyncIterator[HttpReceiver]:
    server = await HttpReceiver().start()
    yield server
    await server.stop()


def config(url: str, *rules: dict[str, Any], **alerts: Any) -> Any:
    return parse_config({
        "providers": [{"name": "mock", "kind": "mock"}], "models": [{"name": "m1",
                                                                    "provider": "mock"}],
        "receivers": [{"name": "hook", "kind": "webhook", "url": f"{url}/hook",
                       "secret": SECRET}],
        "alerts": {"builtins": False, "rules": list(rules), "repeat_interval": "1h",
                   **alerts}}, "keel.yaml")


def documents(http: HttpReceiver) -> list[dict[str, Any]]:
    assert all(verify(SECRET, r.body, r.headers) for r in http.requests)
    return [orjson.loads(r.body) for r in http.requests]


async def test_a_firing_group_is_notified_once_then_resolved(
        store: Store, http: HttpReceiver) -> None:
    await write(store, [Slice(*hour(0), 100, errors=30),
                        Slice(*hour(0), 100, feature="search", errors=1)], random.Random(1))
    async with Dispatcher(config(http.url).receivers) as d:
        m = AlertManager(store, config(http.url, ERRORS), d,
                         public_url="https://keel.example.com", replica="r1")
        first = await m.tick(NOW - 30)
        assert first is not None
        assert [(t.key, t.kind) for t in first.transitions] == [
            ("errors|feature=support", "firing")]
        await http.wait_for(1)
        (doc,) = documents(http)
        assert (doc["status"], doc["severity"], doc["group_labels"]) == (
            "firing", "critical", {"feature": "support"})
        (alert,) = doc["alerts"]
        assert alert["labels"] == {"rule": "errors", "feature": "support"}
        assert alert["value"] == pytest.approx(0.3) and alert["threshold"] == 0.25
        assert alert["links"]["console"] == (
            "https://keel.example.com/alerts?rule=errors&feature=support")
        assert "error rate 30%" in alert["reason"]

        again = await m.tick(NOW + 30)  # the next tick: still firing, nothing new to say
        assert again is not None and again.notifications == []
        # an hour on, the rule's window holds no traffic, which this rule calls ok
        later = await m.tick(NOW - 30 + HOUR)
        assert later is not None and [n.status for n in later.notifications] == ["resolved"]
        await http.wait_for(2)
        assert documents(http)[1]["alerts"][0]["ended_at"] is not None
        kinds = [e["kind"] for e in await list_events(store, key="errors|feature=support")]
        assert kinds == ["resolved", "firing"]  # newest first


async def test_repeat_interval_and_silences(store: Store, http: HttpReceiver) -> None:
    rule = {**ERRORS, "window": "24h", "no_data": "no_data"}
    await write(store, [Slice(*hour(0), 100, errors=30)], random.Random(2))
    async with Dispatcher(config(http.url).receivers) as d:
        m = AlertManager(store, config(http.url, rule), d, replica="r1")
        await m.tick(NOW - 30)
        await http.wait_for(1)
        await m.tick(NOW - 30 + 1800)  # half an hour on: within repeat_interval
        again = await m.tick(NOW - 30 + HOUR + 60)  # past it: sent again
        assert again is not None and [n.status for n in again.notifications] == ["firing"]
        await http.wait_for(2)
        assert len(http.requests) == 2
        assert documents(http)[1]["alerts"][0]["links"] == {}  # no public_url: no links

        at = NOW + 2 * HOUR
        await add_silence(store, {"id": "s1", "matchers": {"feature": "support"},
                                  "creator": "ops@example.com", "reason": "known, fixing",
                                  "starts_at": at - 60, "ends_at": at + 6 * HOUR,
                                  "created_at": at - 60})
        quiet = await m.tick(at + 2 * HOUR)
        assert quiet is not None and quiet.notifications == []
        assert quiet.silenced == {"errors|feature=support": ["s1"]}
        (shown,) = await current(store, at + 2 * HOUR)
        assert (shown["state"], shown["phase"], shown["silenced_by"]) == (
            "silenced", "firing", ["s1"])
        await lift_silence(store, "s1", by="ops@example.com", at=at + 2 * HOUR + 10)
        loud = await m.tick(at + 2 * HOUR + 60)
        # still firing, and repeat_interval has passed since its last notification
        assert loud is not None and [n.status for n in loud.notifications] == ["firing"]
        await http.wait_for(3)
        (shown,) = await current(store, at + 2 * HOUR + 60)
        assert shown["state"] == "alert" and shown["silenced_by"] == []


async def test_of_two_replicas_one_evaluates_each_tick(store: Store) -> None:
    cfg = config("http://127.0.0.1:9", ERRORS)
    await write(store, [Slice(*hour(0), 50, errors=20)], random.Random(3))
    a = AlertManager(store, cfg, replica="a")
    b = AlertManager(store, cfg, replica="b")
    results = [await a.tick(NOW - 30), await b.tick(NOW - 20), await b.tick(NOW + 40),
               await a.tick(NOW + 50)]
    assert [r is not None for r in results] == [True, False, True, False]
    ticks = await last_ticks(store)
    assert [(t["claimed_by"], t["series"]) for t in ticks] == [("b", 1), ("a", 1)]
    assert all(t["finished_at"] is not None and t["error"] is None for t in ticks)


async def test_an_outage_inhibits_the_quality_and_cost_alerts_of_its_feature(
        store: Store, http: HttpReceiver) -> None:
    availability = {"name": "availability", "measure": "availability", "direction": "below",
                    "warning": 0.99, "critical": 0.9, "scope": {"by": "feature"}}
    latency = {"name": "slow", "measure": "latency_p95_ms", "warning": 500,
               "scope": {"by": "feature"}}
    await write(store, [Slice(*hour(0), 100, errors=40, latency_ms=900),
                        Slice(*hour(0), 100, feature="search", latency_ms=900)],
                random.Random(4))
    async with Dispatcher(config(http.url).receivers) as d:
        m = AlertManager(store, config(http.url, availability, latency,
                                       group_by=["rule", "feature"]), d, replica="r1")
        result = await m.tick(NOW - 30)
        assert result is not None
        assert result.inhibited == {"slow|feature=support": "availability|feature=support"}
        sent = sorted(n.group_key for n in result.notifications)
        assert sent == ["feature=search,rule=slow", "feature=support,rule=availability"]
        shown = {a["key"]: a for a in await current(store, NOW)}
        assert shown["slow|feature=support"]["inhibited_by"] == "availability|feature=support"
        assert shown["slow|feature=support"]["phase"] == "firing"

        own = AlertManager(store, config(http.url, availability, latency,
                                         builtin_inhibitions=False), d, replica="r2")
        loud = await own.tick(NOW + 30)
        assert loud is not None and loud.inhibited == {}
        # grouped by feature now: support's group gains the latency alert
        assert {n.group_key for n in loud.notifications} >= {"feature=support"}


async def test_old_transitions_and_ended_silences_are_pruned(store: Store) -> None:
    from keel.store.alerts import EVENTS_KEPT_S, list_silences

    await write(store, [Slice(*hour(0), 100, errors=30)], random.Random(6))
    m = AlertManager(store, config("http://127.0.0.1:9", ERRORS), replica="r1")
    await m.tick(NOW - 30)
    await add_silence(store, {"id": "old", "matchers": {"feature": "support"},
                              "creator": "ops", "reason": "long ago", "starts_at": NOW - 60,
                              "ends_at": NOW, "created_at": NOW - 60})
    assert len(await list_events(store)) == 1
    await m.tick(NOW + EVENTS_KEPT_S + 120)
    assert await list_events(store) == []  # the firing transition, 90 days old, is gone
    assert await list_silences(store) == []


async def test_a_change_from_zero_is_stored_on_both_stores(store: Store) -> None:
    """A change against a window of zero is infinite; JSON has no infinity (PostgreSQL's
    JSON type refuses it), so the stored evaluation says None where the score would be."""
    rule = {"name": "errors-up", "measure": "error_rate", "kind": "change", "window": "1h",
            "warning": 0.5, "scope": {"by": "feature"}}
    await write(store, [Slice(*hour(1), 100, errors=0), Slice(*hour(0), 100, errors=20)],
                random.Random(8))
    m = AlertManager(store, config("http://127.0.0.1:9", rule), replica="r1")
    result = await m.tick(NOW - 30)
    assert result is not None
    (ev,) = result.evaluations
    assert ev.state.breaching and ev.score == float("inf")
    (shown,) = await current(store, NOW)
    assert shown["phase"] == "firing" and shown["value"] == pytest.approx(0.2)
    (event,) = await list_events(store)
    assert event["evaluation"]["score"] is None
