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


ERRORS_CONFIG = ("providers:\n  - {name: mock, kind: mock}\nmodels:\n  - {name: m1, provider: mock}\n"
                 "features:\n  - {name: support}\nalerts:\n  builtins: false\n  rules:\n"
                 "    - {name: errors, measure: error_rate, window: 1h, critical: 0.2,\n"
                 "       scope: {by: feature}, for: 2, no_data: ok}\n")


def invoke(tmp_path: Path, url: str, *args: str) -> Result:
    cfg = tmp_path / "errors.yaml"
    cfg.write_text(ERRORS_CONFIG)
    argv = list(args)
    if argv[1] in ("check", "test"):
        argv[2:2] = ["--config", str(cfg)]
    return CliRunner().invoke(main, argv, env={"KEEL_DATABASE_URL": url,
                                               "KEEL_DATA_DIR": str(tmp_path),
                                               "KEEL_CONFIG": str(cfg), "USER": "ops"})


def test_a_rule_tested_against_history_says_when_it_would_have_fired(tmp_path: Path) -> None:
    from tests.monitor.alerts.history import HOUR, hour

    def outage(rng: random.Random) -> list[Slice]:  # 3 bad hours among 12 steady ones
        return [Slice(*hour(back), 100, errors=40 if back in (5, 6, 7) else 1)
                for back in range(12)]

    url = store_with(tmp_path / "outage.db", outage)
    r = invoke(tmp_path, url, "alerts", "test", "--rule", "errors",
               "--since", str(NOW - 12 * HOUR), "--until", str(NOW), "--step", "1h", "--json")
    assert r.exit_code == 0, r.output
    data = orjson.loads(r.stdout)
    assert data["steps"] == 12
    (support,) = data["series"]
    assert (support["evaluations"], support["breaching"], support["fired"]) == (12, 3, 1)
    # for: 2 -> it fires on the second bad hour, and resolves on the first good one
    kinds = [(t["kind"], t["at"]) for t in support["transitions"]]
    assert kinds == [("pending", NOW - 7 * HOUR), ("firing", NOW - 6 * HOUR),
                     ("resolved", NOW - 4 * HOUR)]
    text = invoke(tmp_path, url, "alerts", "test", "--rule", "errors",
                  "--since", str(NOW - 12 * HOUR), "--until", str(NOW))
    assert "fired 1 time(s); breaching 3 of 12 evaluations, firing 17%" in text.output
    too_many = invoke(tmp_path, url, "alerts", "test", "--rule", "errors", "--since",
                      str(NOW - 400 * 86400), "--until", str(NOW), "--step", "5m")
    assert too_many.exit_code == 2 and "more than 1000" in too_many.output


def test_silences_from_the_cli_are_listed_audited_and_lifted(tmp_path: Path) -> None:
    url = store_with(tmp_path / "silences.db", rework_steady)
    refused = invoke(tmp_path, url, "alerts", "silence", "--match", "colour=red",
                     "--reason", "x", "--for", "1h")
    assert refused.exit_code == 2 and "unknown matcher 'colour'" in refused.output
    made = invoke(tmp_path, url, "alerts", "silence", "--match", "feature=support",
                  "--match", "rule=errors", "--reason", "known issue", "--for", "2h")
    assert made.exit_code == 0, made.output
    silence_id = made.output.split(":", 1)[0]
    assert silence_id.startswith("sil_") and "feature=support, rule=errors" in made.output
    listed = invoke(tmp_path, url, "alerts", "silences", "--json")
    (row,) = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["creator"], row["reason"]) == (silence_id, "ops", "known issue")
    assert invoke(tmp_path, url, "alerts", "unsilence", silence_id).exit_code == 0
    assert "no silence is in force" in invoke(tmp_path, url, "alerts", "silences").output
    assert invoke(tmp_path, url, "alerts", "unsilence", "sil_nope").exit_code == 2
    audit = CliRunner().invoke(main, ["audit", "log", "--json"],
                               env={"KEEL_DATABASE_URL": url, "KEEL_DATA_DIR": str(tmp_path)})
    actions = [orjson.loads(line)["action"] for line in audit.stdout.splitlines()]
    assert actions.count("alerts.silence") == 1 and actions.count("alerts.unsilence") == 1


def test_alerts_list_shows_what_the_loop_stored(tmp_path: Path) -> None:
    from keel.config import load_config
    from keel.monitor.alerts.manager import AlertManager

    def bad_hour(rng: random.Random) -> list[Slice]:
        return [Slice(NOW - 3600, NOW - 1, 100, errors=50)]

    url = store_with(tmp_path / "list.db", bad_hour)
    assert "keel serve has not evaluated" in invoke(tmp_path, url, "alerts", "list").output
    cfg = tmp_path / "errors.yaml"
    cfg.write_text(ERRORS_CONFIG)

    async def two_ticks() -> None:
        store = Store(url)
        m = AlertManager(store, load_config(cfg), replica="test")
        await m.tick(NOW - 90)
        await m.tick(NOW - 30)
        await store.aclose()

    asyncio.run(two_ticks())
    shown = invoke(tmp_path, url, "alerts", "list", "--firing", "--json")
    (row,) = [orjson.loads(line) for line in shown.stdout.splitlines()]
    assert (row["rule"], row["series"], row["phase"], row["state"]) == (
        "errors", {"feature": "support"}, "firing", "alert")
    table = invoke(tmp_path, url, "alerts", "list", "--wide")
    assert "errors" in table.output and "firing" in table.output
