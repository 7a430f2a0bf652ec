"""`keel demo` as people run it: its own directory, never theirs; loaded once, reused;
a refused directory is one clear line and exit 2; it serves what it loaded."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner

from keel.cli.main import main
from keel.demo.home import MARKER, DemoHome
from keel.store import Store
from keel.store.traces import count_traces
from tests.demo.conftest import Month


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def make_store(path: Path) -> None:
    async def go() -> None:
        store = Store(f"sqlite:///{path / 'keel.db'}")
        await store.upgrade()
        await store.aclose()

    path.mkdir(parents=True, exist_ok=True)
    asyncio.run(go())


def traces_in(path: Path) -> int:
    async def go() -> int:
        store = Store(f"sqlite:///{path / 'keel.db'}")
        try:
            return await count_traces(store)
        finally:
            await store.aclose()

    return asyncio.run(go())


def test_the_demo_loads_into_its_own_directory_and_never_the_users(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "user-data"
    make_store(user)
    (tmp_path / "keel.yaml").write_text("models: []\n")
    before = snapshot(user)
    data_home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    env = {"KEEL_DATA_DIR": str(user), "KEEL_DATABASE_URL": f"sqlite:///{user / 'keel.db'}",
           "KEEL_CONFIG": str(tmp_path / "keel.yaml"), "KEEL_MASTER_KEY": "sk-users-own-key",
           "KEEL_REDIS_URL": "redis://127.0.0.1:9/0", "KEEL_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    done = CliRunner().invoke(main, ["demo", "--no-serve", "--requests", "300"], env=env)
    assert done.exit_code == 0, done.output
    demo = data_home / "keel-demo"  # the default: beside the user's data directory
    assert snapshot(user) == before
    assert traces_in(demo) >= 300
    home = DemoHome(demo)
    assert home.loaded() is not None
    key = home.admin_key()
    assert key is not None and key != "sk-users-own-key" and key in done.output
    assert "rejected a contract summary" in done.output
    # run again: the month is reused, not loaded again
    loaded_at = home.loaded()["loaded_at"]  # type: ignore[index]
    again = CliRunner().invoke(main, ["demo", "--no-serve"], env=env)
    assert again.exit_code == 0, again.output
    assert "loading" not in again.output and key in again.output
    assert home.loaded()["loaded_at"] == loaded_at  # type: ignore[index]
    asked = CliRunner().invoke(main, ["demo", "--no-serve", "--seed", "99"], env=env)
    assert "add --reset to load it again" in asked.output
    assert snapshot(user) == before
    assert traces_in(user) == 0


@pytest.mark.parametrize("kind", ["store", "configured", "files", "file"])
def test_a_directory_that_is_not_the_demos_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    env = {}
    if kind == "store":
        make_store(target)
        why = "holds a keel store that is not a demo's"
    elif kind == "configured":
        target.mkdir()
        env["KEEL_DATA_DIR"] = str(target)
        why = "is the data directory keel serve uses here"
    elif kind == "files":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
        why = "is not empty and is not a keel demo directory"
    else:
        target.write_text("mine")
        why = "is a file"
    before = snapshot(tmp_path)
    for args in (["--no-serve"], ["--no-serve", "--reset"]):
        done = CliRunner().invoke(main, ["demo", "--data-dir", str(target), *args], env=env)
        assert done.exit_code == 2
        assert why in done.output, done.output
        if kind != "file":  # a file: click's own usage error says so
            assert done.output == f"error: {target} {why}" + done.output.split(why, 1)[1]
            assert len(done.output.splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_reset_empties_only_a_demo_directory(tmp_path: Path) -> None:
    home = DemoHome(tmp_path / "demo")
    home.claim(seed=1, requests=200, now=0.0)
    (home.path / "spill").mkdir()
    (home.path / "keel.db").write_bytes(b"x")
    home.reset()
    assert list(home.path.iterdir()) == []
    other = DemoHome(tmp_path / "other")
    other.path.mkdir()
    (other.path / "keel.db").write_bytes(b"x")
    with pytest.raises(Exception, match="not a keel demo directory"):
        other.reset()
    assert (other.path / "keel.db").exists()


def test_an_interrupted_load_is_loaded_again(tmp_path: Path) -> None:
    home = DemoHome(tmp_path / "demo")
    home.claim(seed=1, requests=200, now=0.0)  # marked, never completed
    assert home.marker() is not None and home.loaded() is None
    home.check(configured=tmp_path / "elsewhere")  # still the demo's: usable
    data = orjson.loads((home.path / MARKER).read_bytes())
    assert data["complete"] is False


def test_help_says_what_the_demo_is_and_its_options() -> None:
    done = CliRunner().invoke(main, ["demo", "--help"])
    assert done.exit_code == 0
    for option in ("--port", "--data-dir", "--requests", "--seed", "--reset", "--no-serve"):
        assert option in done.output
    assert "30 days" in done.output and "never the one `keel serve` uses" in done.output


def test_the_demo_serves_its_month(month: Month, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KEEL_") or k.startswith("KEEL_TEST_")}
    env.update(HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "demo", "--port", "0", "--data-dir",
         str(month.home.path)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("keel listening on "):
                break
        assert seen and seen[-1].startswith("keel listening on http://127.0.0.1:"), seen
        assert not any(line.startswith("keel demo: loading") for line in seen)
        url = seen[-1].split()[3]
        r = httpx.get(url + "/api/metrics/summary", params={"from": "30d"}, timeout=30,
                      headers={"authorization": f"Bearer {month.home.admin_key()}"})
        assert r.status_code == 200 and r.json()["groups"][0]["requests"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0
