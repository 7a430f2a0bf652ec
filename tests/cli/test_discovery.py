"""Every command finds the config file and store that `keel serve` uses from the same place
(keel.locations): from a subdirectory, with the same --config from anywhere, or the user's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from click.testing import CliRunner, Result

from keel.cli.main import main
from keel.config import Settings
from tests.support.servers import free_port

BUDGETED = """
providers:
  - {name: mock, kind: mock}
models:
  - name: mock
    provider: mock
    price: {input_per_mtok: 100, output_per_mtok: 100}
budgets:
  - {scope: team, name: search, usd: 5.0, period: daily}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of the test's own (no user config or store of the machine's)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return home


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "prompts" / "deep").mkdir(parents=True)
    (proj / "keel.yaml").write_text(BUDGETED)
    return proj


def cli(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str,
        env: dict[str, str] | None = None) -> Result:
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def key_ids(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [k["id"] for k in orjson.loads(result.stdout)]


def test_a_key_created_in_a_project_is_listed_from_a_subdirectory_and_from_elsewhere(
        project: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = cli(project, monkeypatch, "keys", "create", "--team", "search", "--json")
    assert made.exit_code == 0, made.output
    key_id = orjson.loads(made.stdout)["id"]
    assert key_ids(cli(project / "prompts" / "deep", monkeypatch, "keys", "list",
                       "--json")) == [key_id]
    (tmp_path / "elsewhere").mkdir()
    assert key_ids(cli(tmp_path / "elsewhere", monkeypatch, "keys", "list",
                       "--json")) == [key_id]
    assert (home / ".local" / "share" / "keel" / "keel.db").is_file()  # the user's store
    assert not list(tmp_path.rglob(".keel"))


def test_a_projects_own_keel_directory_is_found_from_its_subdirectories(
        project: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / ".keel").mkdir()
    made = cli(project / "prompts", monkeypatch, "keys", "create", "--team", "search", "--json")
    key_id = orjson.loads(made.stdout)["id"]
    assert key_ids(cli(project / "prompts" / "deep", monkeypatch, "keys", "list",
                       "--json")) == [key_id]
    assert (project / ".keel" / "keel.db").is_file()
    assert key_ids(cli(home, monkeypatch, "keys", "list", "--json")) == []  # the user's


def test_budgets_from_a_subdirectory_are_the_project_configs(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli(project / "prompts", monkeypatch, "budgets", "--json")
    assert result.exit_code == 0, result.output
    assert [(b["scope"], b["name"], b["usd"]) for b in orjson.loads(result.stdout)] == [
        ("team", "search", 5.0)]


def test_the_config_named_from_anywhere_is_the_one_used(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cfg = str(project / "keel.yaml")
    budgets = cli(elsewhere, monkeypatch, "budgets", "--config", cfg, "--json")
    assert [b["name"] for b in orjson.loads(budgets.stdout)] == ["search"]
    budgets = cli(elsewhere, monkeypatch, "budgets", "--json", env={"KEEL_CONFIG": cfg})
    assert [b["name"] for b in orjson.loads(budgets.stdout)] == ["search"]


def test_with_no_project_the_users_config_is_used(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".config" / "keel").mkdir(parents=True)
    (home / ".config" / "keel" / "keel.yaml").write_text(BUDGETED)
    (tmp_path / "two").mkdir()
    budgets = cli(tmp_path / "two", monkeypatch, "budgets", "--json")
    assert [b["name"] for b in orjson.loads(budgets.stdout)] == ["search"]


def test_xdg_directories_are_honoured(home: Path, tmp_path: Path) -> None:
    from keel.locations import locate

    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "HOME": str(home)}
    (tmp_path / "cfg" / "keel").mkdir(parents=True)
    (tmp_path / "cfg" / "keel" / "keel.yaml").write_text(BUDGETED)
    found = locate(env=env, cwd=tmp_path)
    assert found.config == tmp_path / "cfg" / "keel" / "keel.yaml"
    assert found.data_dir == tmp_path / "data" / "keel"


def test_a_new_store_is_announced_on_stderr_with_its_config(
        project: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cli(project / "prompts", monkeypatch, "keys", "list", "--json")
    assert first.exit_code == 0
    assert first.stdout.strip() == "[]"
    db = home / ".local" / "share" / "keel" / "keel.db"
    assert first.stderr.splitlines() == [
        f"keel: created a new store: SQLite {db} (the user's data directory)",
        f"keel: config: {project / 'keel.yaml'} (the nearest keel.yaml)"]
    again = cli(project / "prompts", monkeypatch, "keys", "list", "--json")
    assert again.stderr == ""  # only a store created now is announced


def test_a_store_named_by_the_environment_is_not_announced(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli(project, monkeypatch, "keys", "list", "--json",
                 env={"KEEL_DATA_DIR": str(tmp_path / "named")})
    assert result.exit_code == 0 and result.stderr == ""
    assert (tmp_path / "named" / "keel.db").is_file()


def test_settings_follow_the_same_search(project: Path, home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that reads Settings() (every command's helpers, the audit log) agrees with it."""
    monkeypatch.chdir(project / "prompts" / "deep")
    s = Settings()
    assert Path(s.config) == project / "keel.yaml"
    assert Path(s.data_dir) == home / ".local" / "share" / "keel"
    (project / ".keel").mkdir()
    assert Path(Settings().data_dir) == project / ".keel"
    monkeypatch.setenv("KEEL_DATA_DIR", "/data/keel")
    assert Settings().data_dir == "/data/keel"


@pytest.mark.slow
def test_commands_from_a_subdirectory_see_the_running_servers_store_and_budgets(
        project: Path, home: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KEEL_") or k.startswith("KEEL_TEST_")}
    env.update(HOME=str(home), KEEL_MASTER_KEY="sk-test-admin", KEEL_TRACE_FLUSH_INTERVAL_S="0.05")
    log = project.parent / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "keel", "serve", "--port", str(port)],
                                cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        sub = project / "prompts"
        made = subprocess.run([sys.executable, "-m", "keel", "keys", "create", "--team", "search",
                               "--json"], cwd=sub, env=env, capture_output=True, check=True)
        key = orjson.loads(made.stdout)["key"]
        deadline = time.monotonic() + 30
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        while True:  # the server picks up keys created elsewhere within seconds
            try:
                client.chat.completions.create(
                    model="mock", messages=[{"role": "user", "content": "hello"}])
                break
            except openai.AuthenticationError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        deadline = time.monotonic() + 30
        while True:  # the answered request's trace (refusals before the key was seen too)
            traces = subprocess.run([sys.executable, "-m", "keel", "traces", "--json",
                                     "--status", "ok"], cwd=sub, env=env, capture_output=True,
                                    check=True)
            if traces.stdout.strip():
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert [orjson.loads(x)["team"] for x in traces.stdout.splitlines()] == ["search"]
        budgets = subprocess.run([sys.executable, "-m", "keel", "budgets", "--json"], cwd=sub,
                                 env=env, capture_output=True, check=True)
        rows = orjson.loads(budgets.stdout)
        assert [(r["name"], r["spent"] > 0) for r in rows] == [("search", True)]
        assert b"created a new store" not in made.stderr + traces.stderr + budgets.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=60)


RETAINED = BUDGETED + """
features:
  - name: support
    retention: {content_days: 30, rows_days: 400}
"""


@pytest.mark.parametrize("how", ["project", "--config", "KEEL_CONFIG"])
def test_purge_and_stats_read_the_config_the_server_would(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    (project / "keel.yaml").write_text(RETAINED)
    cfg = str(project / "keel.yaml")
    cwd, args, env = project / "prompts", [], None
    if how != "project":
        cwd = tmp_path / "elsewhere"
        cwd.mkdir()
        args = ["--config", cfg] if how == "--config" else []
        env = {"KEEL_CONFIG": cfg} if how == "KEEL_CONFIG" else None
    purged = cli(cwd, monkeypatch, "purge", "--dry-run", "--json", *args, env=env)
    assert purged.exit_code == 0, purged.output
    assert "no feature has a retention rule" not in purged.output
    assert orjson.loads(purged.stdout)["dry_run"] is True
    stats = cli(cwd, monkeypatch, "stats", "--json", *args, env=env)
    assert stats.exit_code == 0, stats.output


def test_a_broken_config_stops_stats_purge_and_costs_with_every_problem(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "keel.yaml").write_text(BUDGETED.replace("price:", "prise:")
                                       + "\nbudgets_x: []\n")
    for args in (["purge", "--dry-run"], ["stats"], ["costs", "prices"]):
        result = cli(project, monkeypatch, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "did you mean 'price'" in result.output, (args, result.output)
        assert "budgets_x" in result.output, (args, result.output)
