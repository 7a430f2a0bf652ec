"""One time grammar: every --since/--until of the CLI and every since/until/from/to of the
API take the same forms (durations, ISO 8601, UNIX seconds) and refuse the same others;
a bad value is a usage error (exit 2) naming the option, or a 400 naming the parameter."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml
from click.testing import CliRunner

from keel.cli.main import main
from keel.store import Store
from keel.store.traces import insert_rows, payload_values, trace_values
from tests.store.test_store import make_trace
from tests.support.keel import Keel, running_keel

CONFIG = {"providers": [{"name": "mock", "kind": "mock"}],
          "models": [{"name": "mock", "provider": "mock",
                      "price": {"input_per_mtok": 1, "output_per_mtok": 2}}]}
BAD = ["yesterday", "1_000", "1e9", "+5", "-5m", "nan", "7D", "²", "٣d", "٢٠٢٦-11-01",
       "99999999999999999999", "9999-12-31T23:59-01:00"]


def good_values() -> list[str]:
    """Each form once, all between eight days and ten minutes ago."""
    now = time.time()
    hour_ago = dt.datetime.fromtimestamp(now - 3600, dt.UTC)
    return ["30m", "2h", "7d", "1w",
            dt.datetime.fromtimestamp(now - 2 * 86400, dt.UTC).strftime("%Y-%m-%d"),
            hour_ago.strftime("%Y-%m-%dT%H:%M:%SZ"),
            hour_ago.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(),
            str(int(now - 3600)), f"{now - 3600:.3f}"]


# --- the CLI ----------------------------------------------------------------------------------

WIDE = ["--since", "520w"]  # before every good value: an --until on its own window
CLI_OPTIONS = [
    (["stats"], "--since"), (["stats", *WIDE], "--until"),
    (["rollups", "rebuild"], "--since"), (["rollups", "rebuild", *WIDE], "--until"),
    (["costs", "reprice", "--model", "mock", "--dry-run"], "--since"),
    (["costs", "reprice", "--model", "mock", "--dry-run", *WIDE], "--until"),
    (["costs", "spend"], "--since"), (["costs", "spend", *WIDE], "--until"),
    (["audit", "log"], "--since"), (["audit", "log"], "--until"),
    (["audit", "export", "--out", "-"], "--since"),
    (["datasets", "add-traces", "from-traces"], "--since"),
    (["datasets", "add-traces", "from-traces"], "--until"),
    (["eval", "events"], "--since"),
    (["eval", "events"], "--until"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with one trace ten days old and one a minute old (both with content), so
    add-traces finds a trace after every good --since and before every good --until."""
    tmp = tmp_path_factory.mktemp("times")
    cfg = tmp / "keel.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    db = f"sqlite:///{tmp / 'keel.db'}"

    async def seed() -> None:
        old, new = make_trace(0), make_trace(1)
        old.start_time, new.start_time = time.time() - 10 * 86400, time.time() - 60
        store = Store(db)
        await store.upgrade()
        rows = [trace_values(t) for t in (old, new)]
        await insert_rows(store, rows, [p for t in (old, new) if (p := payload_values(t))])
        await store.aclose()

    asyncio.run(seed())
    return {"KEEL_DATABASE_URL": db, "KEEL_CONFIG": str(cfg), "KEEL_DATA_DIR": str(tmp),
            "COLUMNS": "200"}


def invoke(env: dict[str, str], args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.output


@pytest.mark.parametrize(("args", "option"), CLI_OPTIONS,
                         ids=[f"{' '.join(a[:2])} {o}" for a, o in CLI_OPTIONS])
def test_every_cli_time_option_takes_the_one_grammar(env: dict[str, str], args: list[str],
                                                     option: str) -> None:
    for value in good_values():
        code, out = invoke(env, [*args, option, value])
        assert code == 0, f"{option} {value!r}: {out}"
    for value in BAD:
        code, out = invoke(env, [*args, option, value])
        assert code == 2, f"{option} {value!r} was taken: {out}"
        assert f"Invalid value for '{option}'" in out and "UNIX seconds" in out, out


def test_datasets_add_traces_since_hours_still_works_but_is_hidden(env: dict[str, str]) -> None:
    code, out = invoke(env, ["datasets", "add-traces", "old-spelling", "--since-hours", "1"])
    assert code == 0 and "added 1 cases" in out, out
    code, out = invoke(env, ["datasets", "add-traces", "old-spelling", "--since-hours", "1",
                             "--since", "1h"])
    assert code == 2 and "not both" in out
    code, out = invoke(env, ["datasets", "add-traces", "--help"])
    assert "--since-hours" not in out and "--until" in out


@pytest.mark.parametrize("value", ["²", "٣٠٠", "abc", "99", "1000", "2OO", " "])
def test_datasets_add_traces_status_takes_only_ascii_codes(env: dict[str, str],
                                                           value: str) -> None:
    code, out = invoke(env, ["datasets", "add-traces", "by-status", "--status", value])
    assert code == 2 and "Invalid value for '--status'" in out and "HTTP status" in out, out


def test_datasets_add_traces_status_filters(env: dict[str, str]) -> None:
    for value in ("ok", "200"):
        code, out = invoke(env, ["datasets", "add-traces", "by-status", "--status", value])
        assert code == 0 and "added 2 cases" in out, out
    code, out = invoke(env, ["datasets", "add-traces", "by-status", "--status", "error"])
    assert code == 2 and "no stored traces match" in out


# --- the API ----------------------------------------------------------------------------------

API_PARAMS = [("/api/metrics/summary", "from"), ("/api/metrics/summary", "to"),
              ("/api/costs/spend", "from"), ("/api/costs/spend", "to"),
              ("/api/audit", "since"), ("/api/audit", "until"),
              ("/api/evals/events", "since"), ("/api/evals/events", "until"),
              ("/api/traces", "since"),
              ("/api/traces", "until"), ("/api/outcomes", "since"), ("/api/outcomes", "until")]


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keel]:
    with running_keel(tmp_path_factory.mktemp("api"), CONFIG) as k:
        yield k


@pytest.mark.parametrize(("path", "name"), API_PARAMS, ids=[f"{p} {n}" for p, n in API_PARAMS])
def test_every_api_time_parameter_takes_the_one_grammar(keel: Keel, path: str,
                                                        name: str) -> None:
    for value in good_values():
        r = httpx.get(keel.url + path, params={name: value}, headers=keel.admin_headers())
        assert r.status_code == 200, f"{name}={value!r}: {r.text}"
    for value in BAD:
        r = httpx.get(keel.url + path, params={name: value}, headers=keel.admin_headers())
        assert r.status_code == 400, f"{name}={value!r} was taken: {r.text}"
        err = r.json()["error"]
        assert err["param"] == name and f"'{name}'" in err["message"], err
        assert "UNIX seconds" in err["message"] or "1970 to the year 9999" in err["message"]


@pytest.mark.parametrize("name", ["since", "until"])
def test_reprice_body_times_take_the_one_grammar(keel: Keel, name: str) -> None:
    base = {"model": "mock", "dry_run": True, "since": "520w"}
    for value in good_values():
        r = httpx.post(keel.url + "/api/costs/reprice", json={**base, name: value},
                       headers=keel.admin_headers())
        assert r.status_code == 200, f"{name}={value!r}: {r.text}"
    for value in BAD:
        r = httpx.post(keel.url + "/api/costs/reprice", json={**base, name: value},
                       headers=keel.admin_headers())
        assert r.status_code == 400, f"{name}={value!r} was taken: {r.text}"
        assert r.json()["error"]["param"] == name
