"""The alerts API on a live keel with a real webhook receiver on loopback: evaluate now,
read the state and the transitions, silence (bad input refused with what to fix), lift;
a team's key sees and silences its own team only. Traces are written through the store's
real write path, at the current time."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.monitor.alerts.history import Slice, write
from tests.notify.receivers import HttpReceiver
from tests.support.keel import running_keel

SECRET = "alerts-api-secret-0123456789ab"


@pytest.fixture
async def http() -> AsyncIterator[HttpReceiver]:
    server = await HttpReceiver().start()
    yield server
    await server.stop()


def config(url: str) -> dict[str, Any]:
    return {
        "providers": [{"name": "mock", "kind": "mock"}],
        "models": [{"name": "m1", "provider": "mock"}],
        "receivers": [{"name": "hook", "kind": "webhook", "url": f"{url}/hook",
                       "secret": SECRET}],
        "alerts": {"builtins": False, "interval": "10m", "rules": [
            {"name": "errors", "measure": "error_rate", "window": "30m", "warning": 0.1,
             "critical": 0.25, "scope": {"by": "team"}}]},
    }


def error(r: httpx.Response) -> dict[str, Any]:
    return dict(r.json()["error"])


async def test_evaluate_read_silence_and_lift(tmp_path: Path, http: HttpReceiver,
                                              database_url: str) -> None:
    with running_keel(tmp_path, config(http.url), database_url) as k:
        now = time.time()
        k.run(write(k.state.store, [Slice(now - 900, now - 60, 60, team="a", errors=24),
                                    Slice(now - 900, now - 60, 60, team="b", errors=1)],
                    random.Random(5)))
        ops = k.create_key(team="ops", role="operator", org_wide=True)
        viewer_b = k.create_key(team="b", role="viewer")
        operator_a = k.create_key(team="a", role="operator")

        def auth(key: str) -> dict[str, str]:
            return {"authorization": f"Bearer {key}"}

        async with httpx.AsyncClient(base_url=k.url, timeout=10) as c:
            r = await c.post("/api/alerts/evaluate", headers=auth(ops))
            assert r.status_code == 200, r.text
            found = r.json()
            assert found["evaluated"] is True and found["series"] == 2
            assert found["transitions"] == [
                {"key": "errors|team=a", "kind": "firing", "severity": "alert"}]
            assert found["notifications"] == [
                {"group_key": "all", "status": "firing", "alerts": 1}]  # no feature label
            await http.wait_for(1)
            doc = orjson.loads(http.requests[0].body)
            assert doc["alerts"][0]["labels"] == {"rule": "errors", "team": "a"}

            again = (await c.post("/api/alerts/evaluate", headers=auth(ops))).json()
            assert again["evaluated"] is False and "already evaluated" in again["reason"]

            listed = (await c.get("/api/alerts", headers=auth(ops))).json()
            assert [(a["key"], a["state"], a["phase"]) for a in listed["data"]] == [
                ("errors|team=a", "alert", "firing"), ("errors|team=b", "ok", "inactive")]
            assert listed["evaluation"]["last_tick"]["series"] == 2
            only_b = (await c.get("/api/alerts", headers=auth(viewer_b))).json()["data"]
            assert [a["key"] for a in only_b] == ["errors|team=b"]
            firing = (await c.get("/api/alerts?phase=firing", headers=auth(ops))).json()
            assert [a["key"] for a in firing["data"]] == ["errors|team=a"]

            bad = [({"matchers": {"feature": "support"}, "duration": "2h"}, "reason"),
                   ({"matchers": {"colour": "red"}, "reason": "x", "duration": "2h"},
                    "matchers"),
                   ({"matchers": {"team": "a"}, "reason": "x"}, "duration"),
                   ({"matchers": {"team": "a"}, "reason": "x", "duration": "soon"},
                    "duration"),
                   ({"matchers": {"team": "a"}, "reason": "x", "duration": "100d"},
                    "ends_at"),
                   ({"matchers": {}, "reason": "x", "duration": "1h"}, "matchers")]
            for body, param in bad:
                r = await c.post("/api/alerts/silences", json=body, headers=auth(ops))
                assert r.status_code == 400, (body, r.text)
                assert error(r)["param"] == param, (body, r.text)
            r = await c.post("/api/alerts/silences", content=b"{not json",
                             headers=auth(ops))
            assert r.status_code == 400
            r = await c.post("/api/alerts/silences", headers=auth(operator_a), json={
                "matchers": {"rule": "errors"}, "reason": "x", "duration": "1h"})
            assert r.status_code == 403 and '"team": "a"' in error(r)["message"]

            r = await c.post("/api/alerts/silences", headers=auth(operator_a), json={
                "matchers": {"team": "a", "rule": "errors"}, "reason": "deploy in progress",
                "duration": "2h"})
            assert r.status_code == 201, r.text
            silence = r.json()
            assert silence["creator"].startswith("key:")
            assert silence["ends_at"] - silence["starts_at"] == pytest.approx(7200)
            shown = (await c.get("/api/alerts?rule=errors", headers=auth(ops))).json()["data"]
            assert shown[0]["state"] == "silenced"
            assert shown[0]["silenced_by"] == [silence["id"]]
            active = (await c.get("/api/alerts/silences?active=true",
                                  headers=auth(ops))).json()["data"]
            assert [s["id"] for s in active] == [silence["id"]]

            r = await c.delete("/api/alerts/silences/sil_nope", headers=auth(ops))
            assert r.status_code == 404
            r = await c.delete(f"/api/alerts/silences/{silence['id']}", headers=auth(ops))
            assert r.status_code == 200 and r.json()["lifted_at"] is not None
            assert (await c.get("/api/alerts/silences?active=true",
                                headers=auth(ops))).json()["data"] == []
            shown = (await c.get("/api/alerts?rule=errors", headers=auth(ops))).json()["data"]
            assert shown[0]["state"] == "alert"

            for _ in range(100):  # the receiver's answer reaches the dispatcher after it
                receivers = (await c.get("/api/alerts", headers=auth(ops))).json()["receivers"]
                if receivers["hook"]["sent"]:
                    break
                await asyncio.sleep(0.1)
            assert receivers["hook"] | {"last_sent_at": None} == {
                "kind": "webhook", "queued": 0, "sent": 1, "failed": 0, "retrying": 0,
                "retries": 0, "dropped": 0, "last_error": None, "last_error_at": None,
                "last_sent_at": None, "ok": True}
            tested = await c.post("/api/alerts/test", headers=auth(ops), json={
                "rule": "errors", "since": "1h", "step": "5m"})
            assert tested.status_code == 200, tested.text
            by_key = {h["key"]: h for h in tested.json()["series"]}
            assert tested.json()["steps"] == 12
            assert by_key["errors|team=a"]["fired"] == 1
            assert by_key["errors|team=b"]["breaching"] == 0
            own = await c.post("/api/alerts/test", headers=auth(ops), json={
                "rule": {"name": "mine", "measure": "error_rate", "window": "30m",
                         "warning": 0.01}, "since": "30m", "step": "10m"})
            assert own.status_code == 200 and own.json()["rule"] == "mine"
            for body, status, param in [
                    ({"rule": "nope", "since": "1h"}, 404, None),
                    ({"rule": {"name": "x", "measure": "nope", "warning": 1}, "since": "1h"},
                     400, "rule"),
                    ({"rule": "errors"}, 400, "since"),
                    ({"rule": "errors", "since": "1h", "step": "1s"}, 400, "step"),
                    ({"rule": "errors", "since": "400d", "step": "5m"}, 400, "step")]:
                r = await c.post("/api/alerts/test", headers=auth(ops), json=body)
                assert r.status_code == status, (body, r.text)
                if param:
                    assert error(r)["param"] == param, (body, r.text)
            events = (await c.get("/api/alerts/events", headers=auth(ops))).json()["data"]
            assert [(e["key"], e["kind"]) for e in events] == [("errors|team=a", "firing")]
            audit = (await c.get("/api/audit", headers=k.admin_headers())).json()["data"]
            actions = [e["action"] for e in audit]
            assert "alerts.silence" in actions and "alerts.unsilence" in actions
