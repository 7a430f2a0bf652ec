"""``GET /api/budgets`` and ``keel budgets``: the budget status rows, end to end."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import orjson
import pytest
from click.testing import CliRunner

from keel.cli.main import main
from tests.support.keel import running_keel

CONFIG = {
    "providers": [{"name": "mock", "kind": "mock"}],
    "models": [{"name": "mock", "provider": "mock",
                "price": {"input_per_mtok": 100, "output_per_mtok": 100}}],
    "budgets": [{"scope": "team", "name": "search", "usd": 5.0, "period": "daily"},
                {"scope": "feature", "name": "*", "usd": 2.0, "period": "total",
                 "soft_pct": None}],
}


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_api_budgets_lists_spend_per_budget_instance(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    extra = {}
    if backend == "redis":
        extra = {"redis_url": request.getfixturevalue("redis_url"),
                 "redis_prefix": request.getfixturevalue("redis_prefix")}
    with running_keel(tmp_path, CONFIG, **extra) as k:
        key = k.create_key(team="search", feature="support")
        client = openai.OpenAI(base_url=k.base_url, api_key=key, max_retries=0)
        client.chat.completions.create(model="mock",
                                       messages=[{"role": "user", "content": "hello"}])
        k.flush()
        r = httpx.get(k.url + "/api/budgets", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 403
        rows = []
        for _ in range(50):  # settle runs just after the answer
            r = httpx.get(k.url + "/api/budgets", headers=k.admin_headers())
            assert r.status_code == 200
            body = r.json()
            rows = body["data"]
            if rows and rows[0]["spent"] > 0:
                break
        assert body["object"] == "list"
        assert [(x["scope"], x["name"], x["period"], x["usd"], x["backend"]) for x in rows] == [
            ("team", "search", "daily", 5.0, backend), ("feature", "support", "total", 2.0,
                                                         backend)]
        assert rows[0]["spent"] > 0 and rows[0]["spent"] == rows[1]["spent"]
        assert rows[0]["reserved"] == 0.0 and rows[0]["state"] == "ok"
        assert rows[1]["resets_at"] is None and rows[1]["soft_pct"] is None


def test_keel_budgets_prints_reconciled_spend(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import keel.cli.main as cli

    monkeypatch.setattr(cli.console, "width", 160)
    cfg_file = tmp_path / "keel.yaml"
    cfg_file.write_bytes(orjson.dumps(CONFIG))  # JSON is YAML
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_CONFIG": str(cfg_file),
           "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}"}
    with running_keel(tmp_path, CONFIG, database_url=env["KEEL_DATABASE_URL"]) as k:
        key = k.create_key(team="search", feature="support")
        client = openai.OpenAI(base_url=k.base_url, api_key=key, max_retries=0)
        client.chat.completions.create(model="mock",
                                       messages=[{"role": "user", "content": "hello"}])
        k.flush()
    result = CliRunner().invoke(main, ["budgets", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.output)
    assert [(r["scope"], r["name"], r["backend"]) for r in rows] == [
        ("team", "search", "memory"), ("feature", "support", "memory")]
    assert rows[0]["spent"] > 0 and rows[0]["spent"] == rows[1]["spent"]
    result = CliRunner().invoke(main, ["budgets"], env=env, catch_exceptions=False)
    assert result.exit_code == 0
    assert "search" in result.output and "support (each)" in result.output
    assert "backend: memory" in result.output
