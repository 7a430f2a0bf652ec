"""Per-feature kill switches on both dialects: stop and start over the admin API and the
CLI, refusals on every endpoint (traced), other features unaffected, another replica
picking a stop up, and the audit entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from keel.cli.main import main
from keel.config import default_config
from keel.server.state import AppState
from tests.support.keel import Keel, keel_settings, running_keel

USER = [{"role": "user", "content": "How do I reset my password?"}]
REASON = "runaway loop in the support bot"


def chat(k: Keel, feature: str) -> httpx.Response:
    return httpx.post(f"{k.base_url}/chat/completions", headers={
        **k.admin_headers(), "x-keel-feature": feature}, json={"model": "mock", "messages": USER})


def embed(k: Keel, feature: str) -> httpx.Response:
    return httpx.post(f"{k.base_url}/embeddings", headers={
        **k.admin_headers(), "x-keel-feature": feature},
        json={"model": "mock-embedding", "input": "hello"})


def messages(k: Keel, feature: str) -> httpx.Response:
    return httpx.post(f"{k.base_url}/messages", headers={
        **k.admin_headers(), "x-keel-feature": feature},
        json={"model": "mock", "max_tokens": 50, "messages": USER})


def api(k: Keel, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{k.url}{path}", headers=k.admin_headers(), **kw)


def trace_of(k: Keel, r: httpx.Response) -> dict[str, Any]:
    k.flush()
    got = api(k, "GET", f"/api/traces/{r.headers['x-keel-trace-id']}")
    assert got.status_code == 200, got.text
    return dict(got.json())


def test_stop_refuses_the_feature_and_start_serves_it_again(
        tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:
        assert chat(k, "support").status_code == 200
        r = api(k, "POST", "/api/features/support/stop", json={"reason": REASON})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "stopped" and r.json()["by"] == "admin"

        refused = chat(k, "support")
        assert refused.status_code == 503
        err = refused.json()["error"]
        assert err["code"] == "feature_stopped" and err["type"] == "service_unavailable"
        assert REASON in err["message"] and "by admin" in err["message"]
        assert "keel features start support" in err["message"]
        assert "POST /api/features/support/start" in err["message"]
        t = trace_of(k, refused)
        assert t["error_type"] == "feature_stopped" and t["feature"] == "support"
        assert t["status"] == 503

        e = embed(k, "support")
        assert e.status_code == 503 and e.json()["error"]["code"] == "feature_stopped"
        m = messages(k, "support")
        assert m.status_code == 503 and m.json()["type"] == "error"
        assert REASON in m.json()["error"]["message"]
        assert trace_of(k, m)["error_type"] == "feature_stopped"

        assert chat(k, "search").status_code == 200  # other features keep working
        assert embed(k, "search").status_code == 200
        assert messages(k, "search").status_code == 200

        listed = api(k, "GET", "/api/features").json()["data"]
        assert [(f["feature"], f["state"], f["reason"]) for f in listed] == [
            ("support", "stopped", REASON)]

        r = api(k, "POST", "/api/features/support/start")
        assert r.status_code == 200 and r.json()["state"] == "running"
        assert chat(k, "support").status_code == 200
        assert embed(k, "support").status_code == 200

        entries = api(k, "GET", "/api/audit", params={"action": "feature."}).json()["data"]
        got = [(e["action"], e["actor"], e["target"], e["detail"]["reason"]) for e in entries]
        assert got == [("feature.start", "admin", "support", None),
                       ("feature.stop", "admin", "support", REASON)]


def test_bad_input_is_refused(tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url) as k:
        for body in ({}, {"reason": ""}, {"reason": 3}):
            r = api(k, "POST", "/api/features/support/stop", json=body)
            assert r.status_code == 400 and r.json()["error"]["param"] == "reason", r.text
        r = api(k, "POST", "/api/features/support/stop")  # no body at all
        assert r.status_code == 400
        r = api(k, "POST", "/api/features/support/pause", json={"reason": REASON})
        assert r.status_code == 400 and "stop or start" in r.json()["error"]["message"]
        r = httpx.get(f"{k.url}/api/features")  # no admin key
        assert r.status_code == 401
        assert chat(k, "support").status_code == 200  # nothing was stopped


def test_cli_stop_list_start_and_another_replica(tmp_path: Path, database_url: str) -> None:
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url}

    def run(*args: str) -> tuple[int, str]:
        res = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        return res.exit_code, res.output

    with running_keel(tmp_path, database_url=database_url) as k:
        # a second replica on the same database, refreshed by hand (no sleeping)
        other = AppState.build(keel_settings(tmp_path / "other", database_url),
                               default_config())
        assert other.features is not None
        k.run(other.store.upgrade())
        k.run(other.features.refresh(force=True))

        code, out = run("features", "stop", "support", "--reason", REASON)
        assert code == 0 and "stopped feature support" in out
        code, out = run("features", "list")
        assert code == 0 and "support" in out and "stopped" in out and "runaway" in out

        for st in (k.state, other):
            assert st.features is not None
            k.run(st.features.refresh())
            assert "support" in st.features.stopped
        refused = chat(k, "support")
        assert refused.status_code == 503 and REASON in refused.text
        assert chat(k, "search").status_code == 200

        code, out = run("features", "start", "support")
        assert code == 0 and "started feature support" in out
        code, out = run("features", "list", "--json")
        assert code == 0 and '"state":"running"' in out
        for st in (k.state, other):
            assert st.features is not None
            k.run(st.features.refresh())
        assert not other.features.stopped and chat(k, "support").status_code == 200

        code, out = run("audit", "log", "--action", "feature.", "--json")
        assert code == 0 and out.count("feature.stop") == 1 and out.count("feature.start") == 1
        assert REASON in out
        k.run(other.store.aclose())


@pytest.mark.parametrize("args", [("features", "stop", "support"),
                                  ("features", "pause", "support"),
                                  ("features", "stop", "support", "--reason", " ")])
def test_cli_bad_input_exits_2(tmp_path: Path, database_url: str, args: tuple[str, ...]) -> None:
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url}
    res = CliRunner().invoke(main, list(args), env=env)
    assert res.exit_code == 2, res.output
