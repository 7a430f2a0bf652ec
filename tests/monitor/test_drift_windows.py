"""Drift on stored traces: windows sampled from the store by time (bounded: one indexed
lookup per sampled instant, whatever the store holds), described and compared; and `keel
drift check` on them. Traces are written through keel's real write path."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import event

from keel.cli.main import main
from keel.monitor.drift import evaluate
from keel.monitor.drift_windows import sample_window
from keel.store import Store
from keel.store.traces import insert_rows, payload_values, trace_values
from keel.types import Trace, Usage, trace_id_at

DAY = 86400.0
NOW = 1_790_000_000.0
BILLING = ["invoice", "refund", "charge", "payment", "card", "billing", "receipt", "plan"]
OUTAGE = ["login", "password", "error", "crash", "timeout", "server", "down", "reset"]


def trace(rng: random.Random, at: float, words: list[str], length: int) -> Trace:
    text = " ".join(rng.choice(words) for _ in range(length))
    t = Trace(id=trace_id_at(at), start_time=at, endpoint="chat", team="a", feature="support",
              model_requested="m1")
    t.usage = Usage(input_tokens=length * 2, output_tokens=40)
    t.request_body = {"model": "m1", "messages": [{"role": "user", "content": text}]}
    t.response_body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Thanks, here is what to do next."}}]}
    t.finish(200)
    # After finish(), which times the trace by the clock: a busy machine must not make the
    # two windows' latencies differ.
    t.latency_ms = rng.lognormvariate(6, 0.3)
    t.end_time = at + 1
    return t


async def fill(store: Store, shifted: bool, seed: int = 3) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(1200):  # the reference week: billing questions of ~12 words
        rows.append(trace(rng, NOW - 8 * DAY + i * 7 * DAY / 1200, BILLING, rng.randint(8, 16)))
    for i in range(300):  # the last day: the same, or long outage reports
        words, length = (OUTAGE, rng.randint(25, 40)) if shifted else (BILLING,
                                                                        rng.randint(8, 16))
        rows.append(trace(rng, NOW - DAY + i * DAY / 300, words, length))
    for i in range(0, len(rows), 400):
        batch = rows[i:i + 400]
        await insert_rows(store, [trace_values(t) for t in batch],
                          [p for t in batch if (p := payload_values(t)) is not None])


@pytest.mark.parametrize("shifted", [False, True])
async def test_sampled_windows_show_drift_only_when_the_traffic_changed(
        store: Store, shifted: bool) -> None:
    await fill(store, shifted)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    engine = store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        ref = await sample_window(store, "support", NOW - 8 * DAY, NOW - DAY, 200, seed=1)
        cur = await sample_window(store, "support", NOW - DAY, NOW, 200, seed=2)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 2 * (200 + 1)  # one lookup per instant, one for the contents
    assert 150 <= len(ref) <= 200 and 100 <= len(cur) <= 200
    assert all(d.text for d in ref + cur)  # content came with the sample
    report = evaluate(ref, cur)
    assert report.drifted is shifted, report.drifted_names
    if shifted:
        assert {"request_chars", "texts"} <= set(report.drifted_names)
        assert report.classifier is not None
        typical = {t.text for t in report.classifier.current_terms}
        assert typical & set(OUTAGE)


def test_keel_drift_check_reports_and_exits_1_on_drift(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"

    async def go() -> None:
        store = Store(url)
        await store.upgrade()
        await fill(store, shifted=True)
        await store.aclose()

    asyncio.run(go())
    cfg = tmp_path / "keel.yaml"
    cfg.write_text("providers:\n  - {name: mock, kind: mock}\nmodels:\n"
                   "  - {name: m1, provider: mock}\nfeatures:\n  - {name: support}\n")
    env = {"KEEL_DATABASE_URL": url, "KEEL_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["drift", "check", "--config", str(cfg), "--feature",
                                       "support", "--sample", "200", "--json"], env=env)
    data = orjson.loads(result.stdout)
    assert data["n_current"] == 0 and data["drifted"] is None  # nothing in the last 24h
    assert result.exit_code == 0
    then = CliRunner().invoke(main, ["drift", "check", "--config", str(cfg), "--feature",
                                     "support", "--sample", "200", "--at", str(NOW)], env=env)
    assert then.exit_code == 1, then.output
    texts = next(line for line in then.stdout.splitlines() if "texts" in line)
    assert "DRIFT" in texts
    assert "typical of the current window:" in then.stdout
    refused = CliRunner().invoke(main, ["drift", "check", "--config", str(cfg), "--feature",
                                        "support", "--current", "soon"], env=env)
    assert refused.exit_code == 2 and "--current" in refused.output
