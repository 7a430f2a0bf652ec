"""The keel command: keys, traces, db upgrade, help texts, and refusing a bad config."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from keel.cli.main import main
from keel.store import Store
from keel.store.traces import insert_rows, trace_values
from tests.store.test_store import make_trace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url}


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_db_upgrade_reports_revision(env: dict[str, str]) -> None:
    versions = ROOT / "src" / "keel" / "store" / "migrations" / "versions"
    head = max(p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    code, out = run(env, "db", "upgrade")
    assert code == 0 and f"revision {head}" in out


def test_keys_create_list_revoke(env: dict[str, str]) -> None:
    code, out = run(env, "keys", "create", "--team", "cx", "--feature", "support",
                    "--models", "mock,mock-embedding", "--json")
    assert code == 0
    created = orjson.loads(out)
    assert created["key"].startswith("sk-keel-") and created["models"] == ["mock",
                                                                            "mock-embedding"]
    code, out = run(env, "keys", "list", "--json")
    listed = orjson.loads(out)
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
    code, out = run(env, "keys", "revoke", created["id"])
    assert code == 0 and f"revoked {created['id']}" in out
    code, out = run(env, "keys", "revoke", created["id"])
    assert code == 1 and "no active key" in out
    code, out = run(env, "keys", "list")
    assert "revoked" in out


def test_traces_lists_newest_first_with_filters(env: dict[str, str]) -> None:
    async def seed() -> None:
        store = Store(env["KEEL_DATABASE_URL"])
        await store.upgrade()
        await insert_rows(store, [trace_values(make_trace(i, feature="support" if i < 3 else "qa",
                                                       status=200 if i else 502))
                                  for i in range(5)], [])
        await store.aclose()

    asyncio.run(seed())
    code, out = run(env, "traces", "--json")
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 5
    # ids start with a millisecond clock, so id order is creation order
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    code, out = run(env, "traces", "--json", "--feature", "support", "--status", "error")
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [(r["feature"], r["status"]) for r in rows] == [("support", 502)]
    code, out = run(env, "traces", "--feature", "qa")
    assert code == 0 and "qa" in out
    code, out = run(env, "traces", "--since", "yesterday")
    assert code == 2 and "Invalid value for '--since'" in out and "ISO" in out


def test_traces_list_keeps_each_id_whole_on_its_line_at_80_columns(
        env: dict[str, str]) -> None:
    traces = [make_trace(i, feature="customer-support-escalations") for i in range(3)]

    async def seed() -> None:
        store = Store(env["KEEL_DATABASE_URL"])
        await store.upgrade()
        await insert_rows(store, [trace_values(t) for t in traces], [])
        await store.aclose()

    asyncio.run(seed())
    code, out = run({**env, "COLUMNS": "80"}, "traces")
    assert code == 0
    assert all(len(line.rstrip()) <= 80 for line in out.splitlines()), out
    for t in traces:
        (row,) = [line for line in out.splitlines() if t.id in line]
        assert "200" in row
    code, out = run({**env, "COLUMNS": "80"}, "traces", "--wide")
    assert "tokens in/out" in out and "customer-support-escalations" in out


def test_traces_since_takes_every_time_form(env: dict[str, str]) -> None:
    import datetime as dt
    import time

    async def seed() -> None:
        store = Store(env["KEEL_DATABASE_URL"])
        await store.upgrade()
        old, new = make_trace(0), make_trace(1)
        old.start_time, new.start_time = time.time() - 3 * 86400, time.time() - 60
        await insert_rows(store, [trace_values(old), trace_values(new)], [])
        await store.aclose()

    asyncio.run(seed())
    day_ago = time.time() - 86400
    iso = dt.datetime.fromtimestamp(day_ago, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    for since in ("1d", "24h", iso, str(int(day_ago))):
        code, out = run(env, "traces", "--json", "--since", since)
        assert code == 0, out
        assert len(out.splitlines()) == 1, since
    code, out = run(env, "traces", "--json", "--until", iso)
    assert code == 0 and len(out.splitlines()) == 1


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("providers:\n  - {name: a, kind: openai}\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(cfg)],
                                env={"KEEL_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "bad.yaml: providers[0].base_url" in result.output
    assert "did not start" in result.output
    result = CliRunner().invoke(main, ["serve", "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output


@pytest.mark.parametrize("args", [[], ["serve"], ["keys"], ["keys", "create"], ["traces"],
                                  ["db", "upgrade"]])
def test_help_texts(args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0 and "Usage: " in result.output


def test_readme_config_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from keel.config import parse_config

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert blocks, "the README has a YAML config example"
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("KEEL_HOOK_SECRET", "a-webhook-signing-secret-of-32-chars")
    from keel.prompts import PromptSpec

    docs = [yaml.safe_load(b) for b in blocks]
    prompt_files = [d for d in docs if "messages" in d]
    for doc in prompt_files:  # prompt files are checked as prompt files
        assert PromptSpec.parse(doc, "README.md").variables
    docs = [d for d in docs if "messages" not in d]
    from keel.evals.suite import parse_suite

    suites = [d for d in docs if "scorers" in d]
    assert suites, "the README has an example eval suite"
    for doc in suites:  # suites are checked as suites (scorers built, keys known)
        assert parse_suite(doc, ROOT / "README.md").scorers
    docs = [d for d in docs if "scorers" not in d]
    base = max(docs, key=lambda d: len(d.get("models") or []))  # the full reference example
    for doc in docs:
        # partial snippets (routes:, limits:, budgets: ...) are checked against the reference
        cfg = parse_config({**base, **doc}, "README.md")
        assert cfg.models


def test_readme_settings_table_matches_settings() -> None:
    from keel.config import Settings

    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`KEEL_([A-Z_]+)`", readme)) - {"TEST_POSTGRES_URL",
                                                                 "TEST_REDIS_URL",
                                                                 "TEST_REQUIRE_SERVICES",
                                                                 # read by eval runs only
                                                                 "GIT_COMMIT"}
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields, (documented ^ fields)


def test_admin_key_reset_replaces_the_generated_key(env: dict[str, str]) -> None:
    from keel.keys.service import KeyRing, ensure_master_key

    async def first_key() -> str | None:
        store = Store(env["KEEL_DATABASE_URL"])
        await store.upgrade()
        key = await ensure_master_key(store, None)
        await store.aclose()
        return key

    old = asyncio.run(first_key())
    assert old
    code, out = run(env, "admin-key", "reset", "--yes")
    assert code == 0
    new = out.strip().splitlines()[-1]
    assert new.startswith("sk-keel-admin-") and new != old

    async def check() -> tuple[bool, bool]:
        store = Store(env["KEEL_DATABASE_URL"])
        ring = KeyRing(store, master_key=None)
        await ring.load()
        result = ring.is_master(new), ring.is_master(old)
        await store.aclose()
        return result

    assert asyncio.run(check()) == (True, False)
    code, out = run({**env, "KEEL_MASTER_KEY": "x"}, "admin-key", "reset", "--yes")
    assert code == 2 and "KEEL_MASTER_KEY is set" in out


CHECKED = """
providers:
  - {name: mock, kind: mock}
models:
  - {name: fast, provider: mock}
  - {name: embed, provider: mock, kind: embedding}
routes:
  - {name: chat, targets: [{model: fast}]}
budgets:
  - {scope: team, name: search, usd: 5, period: daily}
"""


def test_config_check_says_what_a_valid_config_configures(tmp_path: Path) -> None:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text(CHECKED)
    result = CliRunner().invoke(main, ["config", "check", "--config", str(cfg)],
                                env={"KEEL_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"config: {cfg} (--config)"
    assert lines[1] == f"store: SQLite {tmp_path / 'data' / 'keel.db'} (KEEL_DATA_DIR)"
    assert "models: 2 (fast, embed (embedding))" in lines
    assert "routes: 1 (chat)" in lines and "policies: 0" in lines
    assert "budgets: 1 (team search $5/daily)" in lines
    assert lines[-1] == "config is valid" and result.stderr == ""
    assert not (tmp_path / "data").exists()  # checking opens no store


def test_config_check_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text("providers:\n  - {name: a, kind: mock}\nmodels:\n"
                   "  - {name: m, provider: b}\n  - {name: n, provider: a, pirce: {}}\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"config error: {cfg}: models[1].pirce: unknown key 'pirce'; did you mean " \
           "'price'?" in result.stderr
    result = CliRunner().invoke(main, ["config", "check", "--config", str(tmp_path / "no.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.stderr


def test_config_check_warns_about_a_config_that_serves_no_models(tmp_path: Path) -> None:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text("providers:\n  - {name: a, kind: mock}\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(cfg)])
    assert result.exit_code == 0
    assert "models: 0" in result.stdout
    assert "warning: no models are configured" in result.stderr


def test_traces_show_prints_one_trace_in_full(tmp_path: Path, database_url: str) -> None:
    import httpx
    import openai

    from tests.support.keel import running_keel

    with running_keel(tmp_path, database_url=database_url) as k:
        key = k.create_key(team="cx", feature="support")
        client = openai.OpenAI(base_url=k.base_url, api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="mock", messages=[{"role": "user", "content": "where is my parcel?"}])
        trace_id = raw.headers["x-keel-trace-id"]
        answer = raw.parse().choices[0].message.content
        k.flush()
        r = httpx.post(k.url + "/api/feedback", headers={"authorization": f"Bearer {key}"},
                       json={"trace_id": trace_id, "thumbs": "down", "comment": "too vague",
                             "score": {"name": "helpfulness", "value": 0.25}})
        assert r.status_code in (200, 201), r.text
        r = httpx.post(k.url + "/api/outcomes", headers={"authorization": f"Bearer {key}"},
                       json={"name": "ticket_resolved", "trace_ids": [trace_id]})
        assert r.status_code in (200, 201), r.text
    env = {"KEEL_DATABASE_URL": database_url, "KEEL_DATA_DIR": str(tmp_path / "cli"),
           "COLUMNS": "100"}
    code, out = run(env, "traces", "show", trace_id, "--json")
    assert code == 0, out
    shown = orjson.loads(out)
    assert shown["id"] == trace_id and shown["team"] == "cx" and shown["status"] == 200
    assert shown["request"]["messages"][0]["content"] == "where is my parcel?"
    assert [(f["thumbs"], f["comment"], f["score"]) for f in shown["feedback"]] == [
        ("down", "too vague", {"name": "helpfulness", "value": 0.25})]
    assert [(o["name"], o["value"]) for o in shown["outcomes"]] == [("ticket_resolved", 1.0)]
    assert shown["attempt_log"][0]["model"] == "mock"
    code, out = run(env, "traces", "show", trace_id)
    assert code == 0, out
    assert f"trace {trace_id}" in out and "where is my parcel?" in out
    assert (answer or "")[:30] in out.replace("\n", " ")
    assert "team cx" in out and "feature support" in out
    assert "too vague" in out and "helpfulness=0.25" in out and "ticket_resolved" in out
    assert "attempts" in out
    code, out = run(env, "traces", "show", "nope")
    assert code == 1 and "no trace with id 'nope'" in out
    code, out = run(env, "traces", "--json")  # the list is still there
    assert code == 0 and [orjson.loads(x)["id"] for x in out.splitlines()] == [trace_id]


def test_keys_list_fits_80_columns_and_wide_shows_everything(env: dict[str, str]) -> None:
    ids = []
    for i in range(3):
        code, out = run(env, "keys", "create", "--team", f"customer-support-platform-{i}",
                        "--feature", "ticket-summarisation", "--name",
                        f"the key the support bot uses in region {i}", "--models",
                        "gpt-4o-mini,claude-3-5-sonnet,gemini-1.5-pro", "--json")
        ids.append(orjson.loads(out)["id"])
    code, out = run({**env, "COLUMNS": "80"}, "keys", "list")
    assert code == 0
    lines = out.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), out
    for i, key_id in enumerate(ids):  # each key on one line, its id and team whole
        (row,) = [line for line in lines if key_id in line]
        assert f"customer-support-platform-{i}" in row and "active" in row
    assert "more with --wide" in out
    code, out = run({**env, "COLUMNS": "80"}, "keys", "list", "--wide")
    assert code == 0
    header = next(line for line in out.splitlines() if " id " in line)
    for name in ("name", "team", "feature", "role", "models", "created", "last used", "state"):
        assert f" {name} " in header
    (row,) = [line for line in out.splitlines() if ids[0] in line]
    assert "gpt-4o-mini,claude-3-5-sonnet,gemini-1.5-pro" in row
