"""Readiness reflects the store and Redis; traces land end to end on both dialects."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai

from tests.support.keel import running_keel
from tests.support.servers import free_port


def test_ready_checks_redis_when_configured(tmp_path: Path, redis_url: str) -> None:
    with running_keel(tmp_path, redis_url=redis_url) as k:
        r = httpx.get(k.url + "/ready")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ready"
        assert {k: body["checks"][k] for k in ("store", "redis")} == {"store": "ok",
                                                                      "redis": "ok"}
        assert body["checks"]["trace_writer"]["state"] == "ok"


def test_ready_stays_200_and_names_redis_as_degraded_when_it_is_down(tmp_path: Path) -> None:
    # keel keeps serving without Redis: a load balancer must not drain it.
    with running_keel(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0") as k:
        r = httpx.get(k.url + "/ready")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "degraded" and body["checks"]["store"] == "ok"
        assert body["checks"]["redis"].startswith("unreachable")
        assert httpx.get(k.url + "/health").status_code == 200  # alive, just not ready


def test_chat_traces_land_in_either_store(tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:
        c = openai.OpenAI(base_url=k.base_url, api_key=k.admin_key, max_retries=0)
        ids = []
        for i in range(5):
            raw = c.chat.completions.with_raw_response.create(
                model="mock", messages=[{"role": "user", "content": f"q{i}"}],
                extra_headers={"X-Keel-Feature": "support"})
            ids.append(raw.headers["x-keel-trace-id"])
        k.flush()
        page = httpx.get(k.url + "/api/traces", params={"feature": "support", "limit": 3},
                         headers=k.admin_headers()).json()
        assert [r["id"] for r in page["data"]] == sorted(ids, reverse=True)[:3]
        rest = httpx.get(k.url + "/api/traces", headers=k.admin_headers(),
                         params={"feature": "support", "cursor": page["next_cursor"]}).json()
        assert [r["id"] for r in rest["data"]] == sorted(ids, reverse=True)[3:]
        assert rest["next_cursor"] is None
        one = httpx.get(f"{k.url}/api/traces/{ids[0]}", headers=k.admin_headers()).json()
        assert one["request"]["messages"][0]["content"] == "q0"
        assert one["cost_usd"] > 0


def test_capture_content_off_stores_numbers_only(tmp_path: Path) -> None:
    with running_keel(tmp_path, capture_content=False) as k:
        c = openai.OpenAI(base_url=k.base_url, api_key=k.admin_key, max_retries=0)
        raw = c.chat.completions.with_raw_response.create(
            model="mock", messages=[{"role": "user", "content": "secret plan"}])
        k.flush()
        t = httpx.get(f"{k.url}/api/traces/{raw.headers['x-keel-trace-id']}",
                      headers=k.admin_headers()).json()
        assert t["request"] is None and t["response"] is None
        assert t["output_tokens"] > 0


def test_requests_are_refused_when_no_trace_could_be_kept(tmp_path: Path) -> None:
    """When the store, the journal and the in-memory hold are all full, keel answers 503
    `traces_unavailable` (and /ready 503) instead of answering without a trace."""
    with running_keel(tmp_path) as k:
        k.state.writer.hold_max = 0  # the hold is full
        r = httpx.post(k.base_url + "/chat/completions", headers=k.admin_headers(),
                       json={"model": "mock", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "traces_unavailable"
        assert r.headers["retry-after"]
        ready = httpx.get(k.url + "/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        k.state.writer.hold_max = 10
        assert httpx.get(k.url + "/ready").status_code == 200
