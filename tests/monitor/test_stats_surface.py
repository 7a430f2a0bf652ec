"""GET /api/metrics/summary and `keel stats` / `keel rollups rebuild` on a live keel."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import orjson
import yaml
from click.testing import CliRunner

from tests.support.keel import running_keel


def test_summary_api_after_real_requests(tmp_path: Path, database_url: str) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}],
              "models": [{"name": "mock", "provider": "mock",
                          "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}],
              "features": [{"name": "support", "value_unit": "ticket_resolved"}]}
    with running_keel(tmp_path, config, database_url=database_url) as k:
        client = openai.OpenAI(base_url=k.base_url, api_key=k.admin_key)
        for i in range(5):
            client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": f"hello {i}"}],
                extra_headers={"x-keel-feature": "support"})
        client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "other"}],
            extra_headers={"x-keel-feature": "search"})
        k.flush()
        h = k.admin_headers()
        r = httpx.get(k.url + "/api/metrics/summary", headers=h,
                      params={"group_by": "feature", "from": "1h"})
        assert r.status_code == 200, r.text
        groups = {g["feature"]: g for g in r.json()["groups"]}
        assert groups["support"]["requests"] == 5 and groups["search"]["requests"] == 1
        assert groups["support"]["availability"] == 1.0
        traces = httpx.get(k.url + "/api/traces", headers=h,
                           params={"feature": "support"}).json()["data"]
        assert groups["support"]["cost_usd"] == sum(t["cost_usd"] for t in traces)
        assert groups["support"]["value_units"] == 0.0  # declared, none reported yet
        assert groups["support"]["latency_ms"]["p50"] is not None
        one = httpx.get(k.url + "/api/metrics/summary", headers=h,
                        params={"feature": "search", "from": "2h", "to": "0s"}).json()
        assert [g["requests"] for g in one["groups"]] == [1]

        for params, param in (({"group_by": "colour"}, "group_by"), ({"from": "last week"},
                                                                     "from"),
                              ({"from": "1h", "to": "2h"}, "to")):
            bad = httpx.get(k.url + "/api/metrics/summary", headers=h, params=params)
            assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
        assert httpx.get(k.url + "/api/metrics/summary").status_code == 401


def test_stats_and_rebuild_cli(tmp_path: Path) -> None:
    from keel.cli.main import main

    cfg = tmp_path / "keel.yaml"
    cfg.write_text(yaml.safe_dump({
        "providers": [{"name": "mock", "kind": "mock"}],
        "models": [{"name": "mock", "provider": "mock"}],
        "features": [{"name": "support", "value_unit": "ticket_resolved"}]}))
    db = f"sqlite:///{tmp_path / 'keel.db'}"
    with running_keel(tmp_path, orjson.loads(orjson.dumps(yaml.safe_load(cfg.read_text()))),
                      database_url=db) as k:
        client = openai.OpenAI(base_url=k.base_url, api_key=k.admin_key)
        for _ in range(3):
            client.chat.completions.create(model="mock", messages=[{"role": "user",
                                                                    "content": "hi"}],
                                           extra_headers={"x-keel-feature": "support"})
        k.flush()
    env = {"KEEL_DATABASE_URL": db, "KEEL_CONFIG": str(cfg),
           "KEEL_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "250"}
    out = CliRunner().invoke(main, ["stats", "--json", "--since", "1h"], env=env)
    assert out.exit_code == 0, out.output
    data = orjson.loads(out.output)
    assert data["groups"][0]["feature"] == "support" and data["groups"][0]["requests"] == 3
    table = CliRunner().invoke(main, ["stats", "--by", "feature,model"], env=env)
    assert table.exit_code == 0 and "support" in table.output and "mock" in table.output
    rebuilt = CliRunner().invoke(main, ["rollups", "rebuild", "--since", "2d"], env=env)
    assert rebuilt.exit_code == 0 and "rolled up 3 traces" in rebuilt.output
    again = CliRunner().invoke(main, ["stats", "--json", "--since", "1h"], env=env)
    assert orjson.loads(again.output)["groups"][0]["requests"] == 3
    bad = CliRunner().invoke(main, ["stats", "--since", "yesterday-ish"], env=env)
    assert bad.exit_code == 2 and "not a time" in bad.output
