"""Retention per feature (content and rows apart; rollups intact), content capture per
feature (full, redacted, none), and the PII redaction it uses."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from keel.guard.redact import iban_ok, luhn_ok, redact_json, redact_text
from keel.store import Store
from keel.store.retention import Rule, purge
from keel.store.schema import rollups, trace_payloads, traces
from keel.store.traces import insert_rows, payload_values, trace_values
from keel.types import Trace
from tests.support.keel import running_keel

DAY = 86400.0


@pytest.mark.parametrize(("text", "expected"), [
    ("mail me at jane.doe@example.co.uk today", "mail me at [EMAIL] today"),
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
    ("order 4111 1111 1111 1112 ok", "order 4111 1111 1111 1112 ok"),  # fails Luhn
    ("IBAN GB82 WEST 1234 5698 7654 32.", "IBAN [IBAN]."),
    ("IBAN GB83 WEST 1234 5698 7654 32.", "IBAN GB83 WEST 1234 5698 7654 32."),  # mod 97
    ("ssn 123-45-6789", "ssn [SSN]"),
    ("from 192.168.10.200 now", "from [IP] now"),
    ("call +1 415 555 0100 please", "call [PHONE] please"),
    ("or (415) 555-0100 or 415-555-0100", "or [PHONE] or [PHONE]"),
    ("nothing to see in 2026", "nothing to see in 2026"),
])
def test_redaction(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_checksums_and_json() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    body = {"messages": [{"role": "user", "content": "I am bob@example.com"}], "n": 1}
    assert redact_json(body) == {"messages": [{"role": "user", "content": "I am [EMAIL]"}],
                                 "n": 1}


def test_content_capture_per_feature(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}],
              "models": [{"name": "mock", "provider": "mock"}],
              "features": [{"name": "support", "capture": "redacted"},
                           {"name": "legal", "capture": "none"}]}
    with running_keel(tmp_path, config) as k:
        client = openai.OpenAI(base_url=k.base_url, api_key=k.admin_key)
        ids = {}
        for feature in ("support", "legal", "search"):
            raw = client.chat.completions.with_raw_response.create(
                model="mock", messages=[{"role": "user", "content": "I am bob@example.com"}],
                extra_headers={"x-keel-feature": feature})
            ids[feature] = raw.headers["x-keel-trace-id"]
        k.flush()
        h = k.admin_headers()
        got = {f: httpx.get(f"{k.url}/api/traces/{i}", headers=h).json()
               for f, i in ids.items()}
        assert got["support"]["request"]["messages"][0]["content"] == "I am [EMAIL]"
        assert got["legal"]["request"] is None and got["legal"]["response"] is None
        assert got["legal"]["input_tokens"] > 0  # the numbers are kept
        assert got["search"]["request"]["messages"][0]["content"] == "I am bob@example.com"


def _trace(i: int, feature: str, age_days: float, now: float) -> Trace:
    t = Trace(id=f"r{i:04d}", start_time=now - age_days * DAY, endpoint="chat",
              feature=feature, team="t", model_requested="m")
    t.latency_ms, t.cost_usd = 10.0, 0.01
    t.request_body = {"messages": [{"role": "user", "content": "hi"}]}
    t.response_body = {"choices": []}
    return t


async def _counts(store: Store) -> tuple[int, int, float]:
    async with store.connect() as conn:
        n_traces = (await conn.execute(sa.select(sa.func.count()).select_from(traces)))
        n_payloads = (await conn.execute(sa.select(sa.func.count()).select_from(
            trace_payloads)))
        cost = (await conn.execute(sa.select(sa.func.sum(rollups.c.cost_usd)).where(
            rollups.c.granularity == "d")))
        return int(n_traces.scalar() or 0), int(n_payloads.scalar() or 0), \
            float(cost.scalar() or 0)


async def test_purge_deletes_content_and_rows_apart_and_keeps_rollups(store: Store) -> None:
    now = time.time()
    ts = [_trace(i, f, age, now) for i, (f, age) in enumerate(
        [("support", 0.5), ("support", 2), ("support", 5), ("support", 9),
         ("search", 9), ("search", 400)])]
    await insert_rows(store, [trace_values(t) for t in ts],
                      [p for t in ts if (p := payload_values(t)) is not None])
    before = await _counts(store)
    assert before[:2] == (6, 6)
    rules = [Rule("support", content_days=1, rows_days=7)]
    dry = await purge(store, rules, dry_run=True, now=now)
    assert dry.features["support"]["traces"] == 1  # the 9-day-old one
    assert dry.features["support"]["payloads"] == 2  # 2 and 5 days old (9 goes with its row)
    assert await _counts(store) == before
    done = await purge(store, rules, now=now)
    assert done.total == {"traces": 1, "payloads": 2}
    n_traces, n_payloads, cost = await _counts(store)
    assert (n_traces, n_payloads) == (5, 3)  # support 0.5d keeps content; search untouched
    assert cost == pytest.approx(before[2])  # rollups intact
    async with store.connect() as conn:
        kept = {r[0] for r in (await conn.execute(sa.select(trace_payloads.c.trace_id))).all()}
    assert kept == {"r0000", "r0004", "r0005"}
    again = await purge(store, rules, now=now)
    assert again.total == {"traces": 0, "payloads": 0}


def test_purge_cli(tmp_path: Path) -> None:
    from keel.cli.main import main

    cfg = tmp_path / "keel.yaml"
    cfg.write_text(yaml.safe_dump({
        "providers": [{"name": "mock", "kind": "mock"}],
        "models": [{"name": "mock", "provider": "mock"}],
        "features": [{"name": "support", "retention": {"content_days": 30}}]}))
    env = {"KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}", "KEEL_CONFIG": str(cfg),
           "KEEL_DATA_DIR": str(tmp_path / "d")}
    out = CliRunner().invoke(main, ["purge", "--dry-run"], env=env)
    assert out.exit_code == 0, out.output
    assert "support: would delete 0 trace rows and the content of 0 traces" in out.output
    cfg.write_text(yaml.safe_dump({"providers": [{"name": "mock", "kind": "mock"}],
                                   "models": [{"name": "mock", "provider": "mock"}]}))
    out = CliRunner().invoke(main, ["purge"], env=env)
    assert out.exit_code == 0 and "nothing to do" in out.output


async def test_reprice_after_a_purge_keeps_the_purged_traces_in_the_rollups(
        store: Store) -> None:
    from keel.config import parse_config
    from keel.costs.reprice import reprice

    now = time.time()
    ts = []
    for i, age in enumerate((0.2, 0.3, 20, 21)):
        t = _trace(i, "support", age, now)
        t.usage.input_tokens, t.usage.output_tokens = 1000, 1000
        ts.append(t)
    await insert_rows(store, [trace_values(t) for t in ts], [])
    await purge(store, [Rule("support", content_days=None, rows_days=10)], now=now)
    # the two old traces are gone; their 0.02 stays in the rollups
    config = parse_config({"providers": [{"name": "p", "kind": "mock"}],
                           "models": [{"name": "m", "provider": "p", "price": {
                               "input_per_mtok": 10.0, "output_per_mtok": 20.0}}]}, "t.yaml")
    result = await reprice(store, config, "m", now - 40 * DAY)
    assert result.traces == 2 and result.cost_after_usd == pytest.approx(2 * 0.03)
    _, _, cost = await _counts(store)
    assert cost == pytest.approx(0.02 + 2 * 0.03)  # purged 2 x 0.01 + repriced 2 x 0.03
