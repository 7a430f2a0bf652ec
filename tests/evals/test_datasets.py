"""Datasets: JSONL, CSV and YAML import into immutable versions; bad lines reported by
number (stop or skip); cases from stored traces; bounded paging."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from keel.errors import NotFound
from keel.evals.datasets import DatasetError, Datasets, ImportReport, parse_file
from keel.store import Store
from keel.store.traces import TraceFilter, insert_rows, payload_values, trace_values
from keel.types import Trace, new_trace_id

JSONL = "\n".join([
    '{"vars": {"question": "Where is my order?"}, "expected": "tracking", "context": ["Orders ship in 2 days."]}',
    '{"messages": [{"role": "user", "content": "hi"}], "tags": ["smalltalk"]}',
    "",
    '{"vars": {"question": "Refund?"}, "expected": {"policy": 30}}',
])


async def test_jsonl_import_creates_numbered_immutable_versions(store: Store,
                                                                tmp_path: Path) -> None:
    f = tmp_path / "support.jsonl"
    f.write_text(JSONL)
    ds = Datasets(store)
    v1, report = await ds.import_file("support", f, message="first")
    assert (v1, report.cases, report.skipped) == (1, 3, [])
    f.write_text(JSONL + '\n{"vars": {"question": "New?"}}')
    v2, _ = await ds.import_file("support", f)
    assert v2 == 2
    first = [c async for _, c in ds.cases("support", 1)]
    assert len(first) == 3 and len([c async for _, c in ds.cases("support", 2)]) == 4
    assert first[0].vars == {"question": "Where is my order?"}
    assert first[0].context == ["Orders ship in 2 days."] and first[1].tags == ["smalltalk"]
    assert first[2].expected == '{"policy":30}'
    assert (await ds.resolve("support"))["version"] == 2
    assert (await ds.resolve("support@1"))["cases"] == 3


def test_bad_jsonl_lines_are_reported_by_number_or_skipped(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"vars": {"q": "ok"}}\n{not json\n{"colour": "red"}\n{"vars": {"q": "ok2"}}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: not valid JSON"):
        list(parse_file(f, ImportReport()))
    report = ImportReport()
    cases = list(parse_file(f, report, on_error="skip"))
    assert [c.vars["q"] for c in cases] == ["ok", "ok2"]
    assert [line for line, _ in report.skipped] == [2, 3]
    assert "unknown key(s) colour" in report.skipped[1][1]


def test_csv_columns_map_to_vars_expected_context_and_tags(tmp_path: Path) -> None:
    f = tmp_path / "cases.csv"
    f.write_text('question,product,expected,context,tags\n'
                 '"Where, exactly?",Acme,tracking,"[""doc a"", ""doc b""]","a, b"\n'
                 'Refund?,Acme,,plain document,\n')
    cases = list(parse_file(f, ImportReport()))
    assert cases[0].vars == {"question": "Where, exactly?", "product": "Acme"}
    assert cases[0].expected == "tracking" and cases[0].context == ["doc a", "doc b"]
    assert cases[0].tags == ["a", "b"]
    assert cases[1].expected is None and cases[1].context == ["plain document"]


def test_yaml_lists_or_cases_mapping(tmp_path: Path) -> None:
    f = tmp_path / "cases.yaml"
    f.write_text("cases:\n  - vars: {q: one}\n    expected: 1\n  - messages: [{role: user, content: two}]\n")
    cases = list(parse_file(f, ImportReport()))
    assert cases[0].expected == "1" and cases[1].messages == [{"role": "user", "content": "two"}]
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases: {not: a list}\n")
    with pytest.raises(DatasetError, match="list of cases"):
        list(parse_file(bad, ImportReport()))


def test_unsupported_or_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unsupported file type '\.txt'"):
        list(parse_file(tmp_path / "x.txt", ImportReport()))
    with pytest.raises(DatasetError, match="file not found"):
        list(parse_file(tmp_path / "x.jsonl", ImportReport()))


async def test_unknown_dataset_lists_what_exists(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    f.write_text('{"vars": {"q": 1}}\n')
    ds = Datasets(store)
    await ds.import_file("alpha", f)
    with pytest.raises(NotFound, match="datasets: alpha"):
        await ds.resolve("beta")
    with pytest.raises(NotFound):
        await ds.resolve("alpha@9")
    for ref in ("alpha@²", "alpha@٣", "alpha@1e3", "alpha@" + "9" * 40):
        with pytest.raises(DatasetError, match="use name or name@VERSION"):
            await ds.resolve(ref)


async def test_failed_traces_become_cases(store: Store, tmp_path: Path) -> None:
    ds = Datasets(store)
    rows, payloads = [], []
    for i, status in enumerate((200, 502, 502)):
        t = Trace(id=new_trace_id(), start_time=time.time() - 10 + i, endpoint="chat",
                  feature="support", model_requested="mock")
        t.finish(status, "upstream_error" if status != 200 else None)
        t.request_body = {"messages": [{"role": "user", "content": f"question {i}"}]}
        rows.append(trace_values(t))
        payloads.append(payload_values(t))
    await insert_rows(store, rows, [p for p in payloads if p])
    version, added = await ds.add_traces("regressions",
                                         TraceFilter(feature="support", status="error"))
    assert (version, added) == (1, 2)
    cases = [c async for _, c in ds.cases("regressions", 1)]
    assert {c.messages[0]["content"] for c in cases if c.messages} == {"question 1",
                                                                       "question 2"}
    assert all(c.metadata["status"] == 502 and "from-trace" in c.tags for c in cases)
    with pytest.raises(DatasetError, match="no stored traces match"):
        await ds.add_traces("regressions", TraceFilter(feature="nothing-here"))


async def test_large_dataset_pages_in_order(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "big.jsonl"
    f.write_text("\n".join(orjson.dumps({"vars": {"i": i}}).decode() for i in range(2500)))
    ds = Datasets(store)
    await ds.import_file("big", f)
    seen = [c.vars["i"] async for _, c in ds.cases("big", 1)]
    assert seen == list(range(2500))


def test_cli_import_list_show(tmp_path: Path) -> None:
    from keel.cli.main import main

    env = {"KEEL_DATA_DIR": str(tmp_path), "KEEL_DATABASE_URL": f"sqlite:///{tmp_path}/k.db"}
    f = tmp_path / "support.jsonl"
    f.write_text(JSONL + "\n{broken\n")
    bad = CliRunner().invoke(main, ["datasets", "import", "support", str(f)], env=env)
    assert bad.exit_code == 2 and "support.jsonl:5: not valid JSON" in bad.output
    ok = CliRunner().invoke(main, ["datasets", "import", "support", str(f), "--on-error",
                                   "skip"], env=env)
    assert ok.exit_code == 0 and "imported support@1: 3 cases" in ok.output
    assert "skipped line 5" in ok.output
    listed = CliRunner().invoke(main, ["datasets", "list", "--json"], env=env)
    assert orjson.loads(listed.output.splitlines()[0])["cases"] == 3
    shown = CliRunner().invoke(main, ["datasets", "show", "support@1", "--limit", "2", "--json"],
                               env=env)
    assert [orjson.loads(line)["vars"] for line in shown.output.splitlines()] == [
        {"question": "Where is my order?"}, {}]
