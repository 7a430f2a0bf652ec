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
    assert code == 2 and "30s, 15m, 2h, 7d" in out


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
