"""/api/evals: runs, results and events over HTTP, on a live keel (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from keel.evals.runner import Runner
from keel.evals.suite import parse_suite
from keel.gateway.internal import LocalGateway
from keel.store import evals as q
from tests.support.keel import running_keel


def _suite(tmp_path: Path) -> object:
    lines = [{"messages": [{"role": "user", "content": f"question {i}"}],
              "expected": "Thanks" if i % 2 else "zebra", "id": f"c{i}"} for i in range(6)]
    (tmp_path / "cases.jsonl").write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    return parse_suite({"dataset": "cases.jsonl", "targets": [{"model": "mock"}],
                        "scorers": [{"type": "contains", "value": "{{expected}}"}]},
                       tmp_path / "suite.yaml")


def test_runs_results_and_events_over_http(tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:
        st = k.state

        async def run() -> dict[str, object]:
            runs = await Runner(st.store, st.prompts, LocalGateway(st.flow)).run(_suite(tmp_path))
            await q.add_event(st.store, "regression", "suite", runs[0]["id"],
                              orjson.dumps({"reasons": ["pass rate fell"]}).decode())
            return runs[0]

        run = k.run(run())
        h = k.admin_headers()
        listed = httpx.get(k.url + "/api/evals/runs", headers=h).json()["data"]
        assert [r["id"] for r in listed] == [run["id"]]
        assert listed[0]["summary"]["scorers"]["contains"]["passed"] == run["passed"]
        assert listed[0]["config"]["scorers"][0]["type"] == "contains"
        one = httpx.get(f"{k.url}/api/evals/runs/{run['id']}", headers=h).json()
        assert one["dataset_name"] == "cases" and one["executions"] == 6

        page = httpx.get(f"{k.url}/api/evals/runs/{run['id']}/results", headers=h,
                         params={"limit": 4}).json()
        assert [r["case_id"] for r in page["data"]] == ["c0", "c1", "c2", "c3"]
        assert page["next_after"] == "3:0"
        rest = httpx.get(f"{k.url}/api/evals/runs/{run['id']}/results", headers=h,
                         params={"limit": 4, "after": page["next_after"]}).json()
        assert [r["case_id"] for r in rest["data"]] == ["c4", "c5"] and rest["next_after"] is None
        failed = httpx.get(f"{k.url}/api/evals/runs/{run['id']}/results", headers=h,
                           params={"status": "failed"}).json()["data"]
        assert len(failed) == run["failed"]
        assert all(r["scores"][0]["passed"] is False for r in failed)

        page = httpx.get(f"{k.url}/api/evals/runs/{run['id']}/report.html", headers=h)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "contains" in page.text and "c5" in page.text

        events = httpx.get(k.url + "/api/evals/events", headers=h).json()["data"]
        assert events[0]["kind"] == "regression" and events[0]["run_id"] == run["id"]
        assert events[0]["detail"] == {"reasons": ["pass rate fell"]}


def test_bad_requests_and_auth(tmp_path: Path) -> None:
    with running_keel(tmp_path) as k:
        h = k.admin_headers()
        assert httpx.get(k.url + "/api/evals/runs").status_code == 401
        key = k.create_key(team="t")
        r = httpx.get(k.url + "/api/evals/runs", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 403
        assert httpx.get(k.url + "/api/evals/runs/nope/report.html",
                         headers=h).status_code == 404
        missing = httpx.get(k.url + "/api/evals/runs/nope", headers=h)
        assert missing.status_code == 404 and "GET /api/evals/runs" in \
            missing.json()["error"]["message"]
        bad = httpx.get(k.url + "/api/evals/runs", headers=h, params={"limit": "0"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
        bad = httpx.get(k.url + "/api/evals/events", headers=h, params={"since": "yesterday"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"
