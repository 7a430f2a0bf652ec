"""Tables at 80 columns: every line fits, the key columns are there with their values whole
(ids never cut), the rest is named in a caption; --wide prints every column; and --json
on every listing prints one object per line."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from keel.cli.main import main
from keel.store import Store
from keel.store import evals as eval_store
from keel.store.traces import insert_rows, payload_values, trace_values
from tests.evals.test_runner import ok_cases, write_jsonl
from tests.store.test_store import make_trace

FEATURE = "customer-support-replies"
MODEL = "support-model-with-a-long-name"
SUITE = "nightly-support"
REASON = ("the refund answers quote a policy that changed on Monday; stopped until the "
          "prompt is fixed and the eval suite passes again")
CONFIG: dict[str, Any] = {
    "providers": [{"name": "mock", "kind": "mock"}],
    "models": [{"name": MODEL, "provider": "mock", "upstream": "mock-upstream-2026-11",
                "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6,
                          "cached_input_per_mtok": 0.075, "per_request_usd": 0.001}},
               {"name": "unpriced-house-model", "provider": "mock"}],
    "features": [{"name": FEATURE, "value_unit": "ticket_resolved"}],
}
PROMPT = {"name": "support-reply-with-a-long-name", "model": MODEL, "messages": [
    {"role": "user", "content": "Customer asks: {{question}}"}]}
SCORER = {"type": "python", "function": "tests.evals.test_runner:passes_when_ok",
          "name": "ok-var"}


def keel(env: dict[str, str], *args: str, columns: int = 80) -> str:
    result = CliRunner().invoke(main, list(args), env={**env, "COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with something in every listing: traces of two features, an eval run and a
    regression event, a dataset, a prompt, a stopped feature, a repricing, a review."""
    tmp = tmp_path_factory.mktemp("tables")
    cfg = tmp / "keel.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    env = {"KEEL_DATABASE_URL": f"sqlite:///{tmp / 'keel.db'}", "KEEL_CONFIG": str(cfg),
           "KEEL_DATA_DIR": str(tmp / "data")}

    async def seed() -> None:
        from keel.review import ReviewService

        store = Store(env["KEEL_DATABASE_URL"])
        await store.upgrade()
        traces = [make_trace(i, feature=FEATURE if i % 2 else "search", model=MODEL)
                  for i in range(6)]
        await insert_rows(store, [trace_values(t) for t in traces],
                          [p for t in traces if (p := payload_values(t))])
        await ReviewService(store).hold(
            trace_id=traces[0].id, key_id=None, team="cx", feature=FEATURE,
            policy="refund-review", policy_version="3", reasons=[{"scanner": "pii"}],
            mode="async", timeout_s=3600, request=None,
            completion={"choices": [{"message": {"role": "assistant", "content": "ok"}}]})
        await store.aclose()

    asyncio.run(seed())
    prompt = tmp / "prompt.yaml"
    prompt.write_text(yaml.safe_dump(PROMPT))
    keel(env, "prompts", "push", str(prompt), "--label", "production")
    write_jsonl(tmp / "cases.jsonl", ok_cases(3, 4))
    keel(env, "datasets", "import", "support-questions", str(tmp / "cases.jsonl"),
         "-m", "the questions customers asked most in November, with the expected answers")
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": SUITE, "dataset": "cases.jsonl",
                                     "targets": [f"{PROMPT['name']}@production"],
                                     "scorers": [SCORER]}))
    keel(env, "eval", "run", str(suite), "-q")
    [run] = [orjson.loads(line) for line in keel(env, "eval", "runs", "--json").splitlines()]

    async def event() -> None:
        store = Store(env["KEEL_DATABASE_URL"])
        await eval_store.add_event(store, "regression", SUITE, run["id"], orjson.dumps(
            {"reasons": ["pass rate 75.0% < threshold 90.0%: the candidate regressed "
                         "against the production label on 12 cases"]}).decode())
        await store.aclose()

    asyncio.run(event())
    keel(env, "features", "stop", FEATURE, "--reason", REASON)
    keel(env, "costs", "reprice", "--model", MODEL, "--since", "1d")
    return {**env, "RUN_ID": run["id"]}


def review_id(env: dict[str, str]) -> str:
    [review] = [orjson.loads(line) for line in keel(env, "reviews", "list", "--json")
                .splitlines()]
    return str(review["id"])


# command, the headers that must stay at 80 columns, the values that must be whole there
TABLES: list[tuple[list[str], list[str], list[str]]] = [
    (["stats"], ["feature", "requests", "avail.", "p95 ms", "cost $"], [FEATURE, "search"]),
    (["stats", "--by", "feature,model"], ["feature", "model", "requests", "cost $"], []),
    (["eval", "runs"], ["run", "suite", "target", "status", "pass rate"],
     ["{run}", SUITE, "done", "75.0%"]),
    (["eval", "events"], ["at (UTC)", "kind", "suite", "why"], ["regression", SUITE]),
    (["costs", "prices"], ["model", "in $/M", "out $/M"], [MODEL, "unpriced-house-model"]),
    (["costs", "spend"], ["feature", "requests", "cost $"], [FEATURE, "total"]),
    (["costs", "spend", "--by", "feature,model,day"], ["feature", "requests", "cost $"], []),
    (["costs", "events"], ["#", "action", "model", "before $", "after $"], [MODEL]),
    (["audit", "log"], ["seq", "time (UTC)", "action", "target"], ["feature.stop"]),
    (["reviews", "list"], ["id", "status", "feature"], ["{review}", "pending"]),
    (["features", "list"], ["feature", "state", "reason"], [FEATURE, "stopped"]),
    (["datasets", "list"], ["dataset", "cases", "message"], ["support-questions@1"]),
    (["datasets", "show", "support-questions"], ["#", "input"], ['question="Question']),
    (["prompts", "list"], ["name", "versions", "labels"], [PROMPT["name"]]),
]


def _values(env: dict[str, str], values: list[str]) -> list[str]:
    out = []
    for v in values:
        if v == "{run}":
            v = env["RUN_ID"][:12]
        elif v == "{review}":
            v = review_id(env)
        out.append(v)
    return out


@pytest.mark.parametrize(("args", "headers", "values"), TABLES,
                         ids=[" ".join(t[0]) for t in TABLES])
def test_tables_fit_80_columns_with_their_key_columns(env: dict[str, str], args: list[str],
                                                      headers: list[str],
                                                      values: list[str]) -> None:
    out = keel(env, *args)
    too_wide = [line for line in out.splitlines() if len(line) > 80]
    assert not too_wide, out
    assert set(headers) <= set(_headers(out)), out
    for value in _values(env, values):
        assert value in out, (value, out)


def _headers(out: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith("┃"))
    return [c.strip() for c in line.strip("┃").split("┃")]


@pytest.mark.parametrize("args", [t[0] for t in TABLES], ids=[" ".join(t[0]) for t in TABLES])
def test_wide_prints_every_column_in_full(env: dict[str, str], args: list[str]) -> None:
    narrow, wide = keel(env, *args), keel(env, *args, "--wide")
    assert "more with --wide" not in wide and "…" not in wide
    hidden = re.search(r"(\d+) more with --wide", narrow)
    assert len(_headers(wide)) == len(_headers(narrow)) + (int(hidden[1]) if hidden else 0)
    assert set(_headers(narrow)) <= set(_headers(wide))


def test_a_long_reason_is_cut_with_an_ellipsis_and_shown_whole_with_wide(
        env: dict[str, str]) -> None:
    assert REASON not in keel(env, "features", "list") and "…" in keel(env, "features", "list")
    assert REASON in keel(env, "features", "list", "--wide")


def test_a_stored_reason_is_plain_text_not_markup(env: dict[str, str]) -> None:
    keel(env, "features", "stop", "billing", "--reason", "see [/link] and [bold]this[/bold]")
    out = keel(env, "features", "list", "--wide", columns=200)
    assert "see [/link] and [bold]this[/bold]" in out
    keel(env, "features", "start", "billing")


@pytest.mark.parametrize("args", [
    ["eval", "runs"], ["eval", "events"], ["costs", "events"], ["audit", "log"],
    ["reviews", "list"], ["features", "list"], ["datasets", "list"],
    ["datasets", "show", "support-questions"], ["prompts", "list"],
], ids=lambda a: " ".join(a))
def test_every_listing_prints_json_lines(env: dict[str, str], args: list[str]) -> None:
    lines = keel(env, *args, "--json").splitlines()
    assert lines and all(isinstance(orjson.loads(line), dict) for line in lines)


def test_eval_events_json_has_the_detail_as_an_object(env: dict[str, str]) -> None:
    [event] = [orjson.loads(line) for line in keel(env, "eval", "events", "--json")
               .splitlines()]
    assert event["kind"] == "regression" and event["suite"] == SUITE
    assert event["detail"]["reasons"][0].startswith("pass rate 75.0%")
    assert keel(env, "eval", "events", "--since", "0", "--json").splitlines()
    assert keel(env, "eval", "events", "--since", str(time.time() + 60)).startswith(
        "no eval events match")


def test_datasets_show_json_is_what_import_reads(env: dict[str, str], tmp_path: Path) -> None:
    out = keel(env, "datasets", "show", "support-questions", "--json", "--limit", "2")
    cases = [orjson.loads(line) for line in out.splitlines()]
    assert [c["id"] for c in cases] == ["k0", "k1"]
    copy = tmp_path / "copy.jsonl"
    copy.write_text(out)
    assert "imported support-copy@1: 2 cases" in keel(env, "datasets", "import",
                                                      "support-copy", str(copy))


def test_eval_show_json(env: dict[str, str]) -> None:
    data = orjson.loads(keel(env, "eval", "show", env["RUN_ID"][:10], "--json", "--failures"))
    assert data["id"] == env["RUN_ID"] and data["summary"]["pass_rate"] == 0.75
    assert [f["case_id"] for f in data["failures"]] == ["k3"]
    assert data["failures"][0]["scores"][0]["passed"] is False


@pytest.mark.parametrize("width", [40, 56, 64, 80, 100, 132])
def test_print_table_fits_any_width_and_cuts_whole_columns_last(width: int) -> None:
    import io

    from rich.console import Console

    from keel.cli.tables import Column, print_table

    columns = [Column("id", whole=True), Column("name"), Column("count", "right"),
               Column("note", drop=1, flex=True), Column("extra", drop=2),
               Column("empty", drop=3)]
    rows = [[f"id_{i:030d}", "a-name-of-some-length-" * (i + 1), str(10**i), REASON,
             "x" * 20, "-"] for i in range(3)]
    out = io.StringIO()
    print_table(Console(file=out, width=width), columns, rows)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    if width < 60:  # narrower than the kept columns at their shortest: all are cut
        return
    body = [line for line in lines if line.startswith("│")]
    assert all(f"id_{i:030d}" in line for i, line in enumerate(body))
    assert "count" in lines[1] and "100" in body[2]
    assert "empty" not in lines[1] or width >= 132
