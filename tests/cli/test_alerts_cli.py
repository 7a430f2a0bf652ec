"""`keel alerts check` on a store holding a rework surge at stable volume (written through
keel's real write paths): the built-in rule is in alert with its reason, the command exits
1 for a script to act on, --json gives every evaluation, and an unknown --rule is refused."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import orjson
from click.testing import CliRunner, Result

from keel.cli.main import main
from keel.store import Store
from tests.monitor.alerts.history import NOW, Slice, write
from tests.monitor.alerts.test_builtin_rules import rework_steady, rework_surge

History = Callable[[random.Random], list[Slice]]


def store_with(path: Path, history: History) -> str:
    url = f"sqlite:///{path}"

    async def go() -> None:
        store = Store(url)
        await store.upgrade()
        await write(store, history(random.Random(7)), random.Random(7))
        await store.aclose()

    asyncio.run(go())
    return url


def run(tmp_path: Path, url: str, *args: str) -> Result:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text("providers:\n  - {name: mock, kind: mock}\nmodels:\n"
                   "  - {name: m1, provider: mock}\nfeatures:\n  - {name: support}\n")
    return CliRunner().invoke(main, ["alerts", "check", "--config", str(cfg),
                                     "--at", str(NOW - 1), *args],
                              env={"KEEL_DATABASE_URL": url, "KEEL_DATA_DIR": str(tmp_path)})


def test_a_rework_surge_is_in_alert_and_the_command_exits_1(tmp_path: Path) -> None:
    url = store_with(tmp_path / "surge.db", rework_surge)
    shown = run(tmp_path, url, "--wide")
    assert shown.exit_code == 1, shown.output
    line = next(x for x in shown.output.splitlines()
                if "keel.rework-surge" in x)
    assert "alert" in line and "feature=support" in line and "rework rate" in line
    data = orjson.loads(run(tmp_path, url, "--json").stdout)
    surge = [e for e in data if e["rule"] == "keel.rework-surge"]
    assert [e["state"] for e in surge] == ["alert"]
    assert surge[0]["series"] == {"feature": "support"} and surge[0]["n"] >= 30


def test_steady_rework_is_ok_and_the_command_exits_0(tmp_path: Path) -> None:
    url = store_with(tmp_path / "steady.db", rework_steady)
    shown = run(tmp_path, url, "--rule", "keel.rework-surge", "--json")
    assert shown.exit_code == 0, shown.output
    assert {e["state"] for e in orjson.loads(shown.stdout)} == {"ok"}
    unknown = run(tmp_path, url, "--rule", "keel.no-such-rule")
    assert unknown.exit_code == 2 and "unknown rule keel.no-such-rule" in unknown.output
