"""The audit log on both dialects: appending, verifying, and catching every kind of tampering
with the stored entries, checkpoints and exported bundles; the events keel records."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from keel.audit import AuditLog, content_hash, verify_bundle
from keel.audit.chain import entry_hash, sign
from keel.audit.digest import TraceDigest, batch_digest
from keel.audit.merkle import EMPTY_ROOT, Frontier, leaf_hash, tree_head
from keel.cli.main import main
from keel.config import parse_config
from keel.keys.service import create_key, revoke_key
from keel.prompts import PromptRegistry, PromptSpec
from keel.store import Store
from keel.store.schema import audit_checkpoints, audit_entries
from keel.telemetry.writer import TraceWriter
from tests.store.test_store import make_trace
from tests.support.keel import running_keel

KEY = "test-audit-key-0123456789"
EVENTS: list[dict[str, Any]] = [
    {"action": "key.create", "actor": "ana", "target": "a1b2c3d4e5f6",
     "after": "1" * 64, "detail": {"team": "cx", "models": ["mock"]}},
    {"action": "prompt.push", "actor": "bo", "target": "support-reply@1",
     "after": "2" * 64, "detail": {"version": 1, "message": "first"}},
    {"action": "prompt.label", "actor": "cy", "target": "support-reply@production",
     "before": "2" * 64, "after": "3" * 64,
     "detail": {"label": "production", "from_version": 1, "to_version": 2,
                "reason": "better answers, é ✓"}},
    {"action": "budgets.change", "actor": "ops", "target": "keel.yaml",
     "before": "4" * 64, "after": "5" * 64, "detail": {"budgets": [{"usd": 12.5}]}},
    {"action": "retention.purge", "actor": None, "target": None,
     "detail": {"total": {"traces": 3, "payloads": 9}}},
    {"action": "key.revoke", "actor": "admin", "target": "a1b2c3d4e5f6",
     "before": "6" * 64, "after": "7" * 64, "detail": None},
    {"action": "costs.reprice", "actor": "ops", "target": "gpt-4o", "after": "8" * 64,
     "detail": {"traces": 10, "cost_before_usd": 0.5, "cost_after_usd": 0.25}},
]


async def fill(audit: AuditLog, n: int = len(EVENTS)) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        ev = dict(EVENTS[i % len(EVENTS)])
        action = ev.pop("action")
        out.append(await audit.record(action, **ev))
    return out


async def rows(store: Store) -> list[dict[str, Any]]:
    async with store.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(
            sa.select(audit_entries).order_by(audit_entries.c.seq))).all()]


async def execute(store: Store, *statements: Any) -> None:
    async with store.begin() as conn:
        for stmt in statements:
            await conn.execute(stmt)


def where_seq(seq: int) -> Any:
    return audit_entries.update().where(audit_entries.c.seq == seq)


# --- the Merkle tree ---------------------------------------------------------------------------


def test_tree_heads_match_the_rfc6962_test_vectors() -> None:
    # the leaves and tree heads of the Certificate Transparency reference tests
    leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
    heads = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
             "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
             "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
             "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
             "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
             "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
    f = Frontier()
    assert f.root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for data, head in zip(leaves, heads, strict=True):
        f.append(leaf_hash(bytes.fromhex(data)))
        assert f.root().hex() == head


def test_frontier_agrees_with_the_recursive_definition_and_resumes_from_its_peaks() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(70)]
    f = Frontier()
    for n, h in enumerate(hashes, 1):
        f.append(h)
        assert f.root() == tree_head(hashes[:n])
        resumed = Frontier(n, f.peaks)  # a verifier given only the peaks of the first n
        resumed.extend(hashes[n:])
        assert resumed.root() == tree_head(hashes)
    with pytest.raises(ValueError, match="peaks"):
        Frontier(5, f.peaks[:1])


# --- appending and verifying -------------------------------------------------------------------


async def test_appended_entries_verify_and_are_covered_by_signed_checkpoints(
        store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    written = await fill(audit)
    assert [e["seq"] for e in written] == [1, 2, 3, 4, 5, 6, 7]
    assert written[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(written))
    cps = await audit.checkpoints()
    assert [c["size"] for c in cps] == [3, 6] and all(c["signature"] for c in cps)
    leaves = [bytes.fromhex(e["hash"]) for e in written]
    assert cps[1]["root"] == tree_head(leaves[:6]).hex() and cps[1]["head"] == written[5]["hash"]
    report = await audit.verify()
    assert report.ok, report.problem
    assert (report.entries, report.checkpoints, report.signed, report.uncovered) == (7, 2, True, 1)
    assert report.covered is not None and report.covered["size"] == 6
    listed, cursor = await audit.entries(limit=4)
    assert [e["seq"] for e in listed] == [7, 6, 5, 4] and cursor == 4
    listed, cursor = await audit.entries(limit=4, before_seq=cursor)
    assert [e["seq"] for e in listed] == [3, 2, 1] and cursor is None
    assert listed[0]["detail"]["reason"] == "better answers, é ✓"
    prompts, _ = await audit.entries(action="prompt.")
    assert [e["action"] for e in prompts] == ["prompt.label", "prompt.push"]


async def test_without_a_key_checkpoints_are_unsigned_and_verify_says_so(store: Store) -> None:
    audit = AuditLog(store, checkpoint_every=2)
    await fill(audit, 4)
    report = await audit.verify()
    assert report.ok and not report.signed and report.covered and report.covered["size"] == 4
    assert any("KEEL_AUDIT_KEY is not set" in n for n in report.notes)
    # a keyed process later: the unsigned checkpoints still check out, and are counted
    keyed = await AuditLog(store, key=KEY).verify()
    assert keyed.ok and any("unsigned" in n for n in keyed.notes)


async def test_concurrent_appends_from_two_stores_form_one_gapless_chain(
        database_url: str) -> None:
    stores = [Store(database_url), Store(database_url)]
    await stores[0].upgrade()
    try:
        logs = [AuditLog(s, key=KEY, checkpoint_every=7) for s in stores]

        async def writer(i: int) -> None:
            for n in range(15):
                await logs[i].record("test.event", actor=f"writer-{i}", detail={"n": n})

        await asyncio.gather(writer(0), writer(1), writer(0), writer(1))
        stored = await rows(stores[0])
        assert [r["seq"] for r in stored] == list(range(1, 61))
        report = await logs[1].verify()
        assert report.ok, report.problem
        assert report.entries == 60 and report.covered and report.covered["size"] == 56
    finally:
        for s in stores:
            await s.aclose()


# --- tampering with the stored entries ---------------------------------------------------------


def _flip(text: str, i: int) -> str:
    """``text`` with its i-th character changed (one byte for ASCII)."""
    c = text[i]
    new = chr(ord(c) ^ 1) if c.isascii() else "x"
    return text[:i] + new + text[i + 1:]


async def test_every_single_byte_edit_of_an_entry_is_detected_at_that_entry(
        store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit, 5)
    victim = (await rows(store))[2]  # entry 3: has actor, target, both hashes, detail
    checked = 0
    for column in ("actor", "action", "target", "before_hash", "after_hash", "detail",
                   "prev_hash", "hash"):
        original = victim[column]
        assert original, column
        for i in range(len(original)):
            await execute(store, where_seq(3).values({column: _flip(original, i)}))
            report = await audit.verify()
            assert not report.ok and report.broken_seq == 3, (column, i, report.problem)
            checked += 1
        await execute(store, where_seq(3).values({column: original}))
    text = repr(victim["at"])
    for i, c in enumerate(text):
        edited = float(text[:i] + str((int(c) + 1) % 10) + text[i + 1:]) if c.isdigit() else 0
        if c.isdigit() and edited != victim["at"]:  # (a last digit may name the same float)
            await execute(store, where_seq(3).values(at=edited))
            report = await audit.verify()
            assert not report.ok and report.broken_seq == 3, (text, i)
            checked += 1
    await execute(store, where_seq(3).values(at=victim["at"], actor=None))
    report = await audit.verify()  # even a value made NULL
    assert not report.ok and report.broken_seq == 3
    await execute(store, where_seq(3).values(actor=victim["actor"]))
    assert (await audit.verify()).ok and checked > 300


async def test_a_deleted_entry_is_reported_missing(store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit)
    await execute(store, audit_entries.delete().where(audit_entries.c.seq == 4))
    report = await audit.verify()
    assert not report.ok and report.broken_seq == 4 and "missing" in (report.problem or "")


@pytest.mark.parametrize(("every", "broken"), [(3, 3), (100, 4)])
async def test_an_inserted_forged_entry_is_detected(store: Store, every: int,
                                                    broken: int) -> None:
    """With a checkpoint covering it, the forged entry itself is named (its leaf differs
    from the signed tree's); without, the first real entry that no longer fits."""
    audit = AuditLog(store, key=KEY, checkpoint_every=every)
    await fill(audit)
    stored = await rows(store)
    # a forged entry 3 that chains correctly to entry 2; the real entries move up by one
    forged = {**stored[2], "actor": "mallory", "action": "key.create", "detail": None,
              "prev_hash": stored[1]["hash"]}
    forged["hash"] = entry_hash(forged)
    await execute(store, audit_entries.update().where(audit_entries.c.seq >= 3)
                  .values(seq=audit_entries.c.seq + 100))
    await execute(store, audit_entries.update().where(audit_entries.c.seq >= 100)
                  .values(seq=audit_entries.c.seq - 99), audit_entries.insert().values(forged))
    report = await audit.verify()
    assert not report.ok and report.broken_seq == broken, report.problem


async def test_a_forged_entry_appended_without_its_chain_is_detected(store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit)
    last = (await rows(store))[-1]
    await execute(store, audit_entries.insert().values(
        {**last, "seq": 8, "actor": "mallory", "prev_hash": "f" * 64}))
    report = await audit.verify()
    assert not report.ok and report.broken_seq == 8


async def test_swapping_two_entries_is_detected_at_the_first(store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit)
    await execute(store, where_seq(2).values(seq=100), where_seq(5).values(seq=2),
                  where_seq(100).values(seq=5))
    report = await audit.verify()
    assert not report.ok and report.broken_seq == 2


async def test_truncating_the_tail_is_detected_against_the_last_checkpoint(
        store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit)  # checkpoints at 3 and 6; 7 entries
    await execute(store, audit_entries.delete().where(audit_entries.c.seq >= 5))
    report = await audit.verify()
    assert not report.ok and report.broken_seq == 5
    assert "truncated" in (report.problem or "") and report.broken_checkpoint is not None


async def test_a_rewritten_history_is_caught_by_the_signed_checkpoint(store: Store) -> None:
    """A forger who edits an entry and recomputes every later hash keeps the chain intact;
    the signed tree head does not match any more."""
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit)
    stored = await rows(store)
    prev = stored[3]["prev_hash"]
    for row in stored[3:]:  # entries 4..7
        row["prev_hash"] = prev
        if row["seq"] == 5:
            row["actor"] = "someone-else"
        row["hash"] = prev = entry_hash(row)
        await execute(store, where_seq(row["seq"]).values(
            actor=row["actor"], prev_hash=row["prev_hash"], hash=row["hash"]))
    report = await audit.verify()
    # the signed checkpoint at 6 narrows it down to the right entry (its peaks: 1..4, 5..6)
    assert not report.ok and report.broken_seq == 5, report.problem
    assert "tree head" in (report.problem or "")


async def test_a_forged_checkpoint_signature_is_detected(store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit)
    cp = (await audit.checkpoints())[1]
    bad = ("0" if cp["signature"][0] != "0" else "1") + cp["signature"][1:]
    q = audit_checkpoints.update().where(audit_checkpoints.c.id == cp["id"])
    await execute(store, q.values(signature=bad))
    report = await audit.verify()
    assert not report.ok and report.broken_checkpoint == cp["id"] and report.broken_seq is None
    assert "signature" in (report.problem or "")
    # a checkpoint re-signed with another key names the key it was signed with
    await execute(store, q.values(signature=sign("other", size=cp["size"], root=cp["root"],
                                                 head=cp["head"], at=cp["at"])))
    report = await audit.verify()
    assert not report.ok and report.broken_checkpoint == cp["id"]
    # the truncation check cannot be silenced by stripping the signature either: an
    # unsigned checkpoint still has to match the entries
    await execute(store, q.values(signature=None, root="ab" * 32))
    report = await audit.verify()
    assert not report.ok and report.broken_seq == 4


async def test_a_checkpoint_is_not_signed_over_a_tampered_segment(store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit, 4)
    await execute(store, where_seq(4).values(actor="mallory"))
    await audit.record("test.event")  # would checkpoint at 6; refuses over the broken entry 4
    await audit.record("test.event")
    assert [c["size"] for c in await audit.checkpoints()] == [3]
    assert (await audit.verify()).broken_seq == 4


# --- bundles -----------------------------------------------------------------------------------


async def test_an_exported_bundle_verifies_offline_and_any_change_to_it_fails(
        store: Store) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    written = await fill(audit)
    since = written[3]["at"]
    bundle = orjson.loads(orjson.dumps(await audit.export(since)))  # through JSON, as a file
    assert [e["seq"] for e in bundle["entries"]] == [4, 5, 6, 7]
    assert bundle["start"]["size"] == 3 and bundle["start"]["head"] == written[2]["hash"]
    assert bundle["checkpoints"][-1]["size"] == 7  # written by the export
    report = verify_bundle(bundle, key=KEY)
    assert report.ok and report.signed and report.entries == 4, report.problem
    assert not verify_bundle(bundle, key="wrong-key").ok
    assert verify_bundle(bundle, key=None).ok  # consistent; a note says unauthenticated

    def fails(change: Any, seq: int | None = None) -> None:
        b = copy.deepcopy(bundle)
        change(b)
        r = verify_bundle(b, key=KEY)
        assert not r.ok, r.problem
        if seq is not None:
            assert r.broken_seq == seq, r.problem

    fails(lambda b: b["entries"][1].update(actor="mallory"), 5)
    fails(lambda b: b["entries"][1].update(detail=b["entries"][1]["detail"] + " "), 5)
    fails(lambda b: b["entries"].pop(1), 5)
    fails(lambda b: b["entries"].insert(2, copy.deepcopy(b["entries"][1])), 6)
    fails(lambda b: b["entries"].reverse(), 4)
    fails(lambda b: b["entries"].pop(), 7)  # truncated: the last checkpoint covers 7
    fails(lambda b: (b["entries"].pop(), b["checkpoints"].pop()), 7)  # nothing covers 7 now
    fails(lambda b: b["start"].update(head="0" * 64))
    fails(lambda b: b.update(end={"size": 6, "root": b["checkpoints"][-2]["root"]}))
    fails(lambda b: b["start"]["peaks"].__setitem__(0, "ab" * 32))
    fails(lambda b: b["checkpoints"][-1].update(root="ab" * 32))
    fails(lambda b: b["checkpoints"][-1].update(signature=None))
    fails(lambda b: b.update(format="something-else"))

    whole = await audit.export()
    assert whole["start"]["size"] == 0 and len(whole["entries"]) == 7
    assert verify_bundle(whole, key=KEY).ok
    empty = await audit.export(written[-1]["at"] + 1)  # nothing since: still anchored
    assert empty["entries"] == [] and verify_bundle(empty, key=KEY).ok


async def test_a_broken_log_is_not_exported(store: Store) -> None:
    from keel.audit import AuditLogBroken

    audit = AuditLog(store, key=KEY, checkpoint_every=3)
    await fill(audit)
    await execute(store, where_seq(2).values(actor="mallory"))
    with pytest.raises(AuditLogBroken, match="entry 2"):
        await audit.export()


def test_cli_verifies_exports_and_verifies_a_bundle(tmp_path: Path, database_url: str) -> None:
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url,
           "KEEL_AUDIT_KEY": KEY, "KEEL_AUDIT_CHECKPOINT_EVERY": "3"}

    def run(*args: str, extra: dict[str, str] | None = None) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), env={**env, **(extra or {})},
                                    catch_exceptions=False)
        return result.exit_code, result.output

    code, out = run("keys", "create", "--team", "cx", "--json")
    key_id = orjson.loads(out)["id"]
    assert run("keys", "revoke", key_id)[0] == 0
    code, out = run("audit", "log", "--json")
    entries = [orjson.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in entries] == ["key.revoke", "key.create"]
    assert entries[0]["target"] == key_id and entries[0]["actor"]
    code, out = run("audit", "verify")
    assert code == 0 and out.startswith("OK: 2 entries") and "not yet covered" in out
    code, out = run("audit", "checkpoint")
    assert code == 0 and "signed" in out
    code, out = run("audit", "verify")
    assert code == 0 and "covered by signed checkpoint" in out
    bundle = tmp_path / "audit.json"
    code, out = run("audit", "export", "--since", "2000-01-01", "--out", str(bundle))
    assert code == 0 and "2 entries" in out
    code, out = run("audit", "verify", "--bundle", str(bundle))
    assert code == 0 and out.startswith("OK: 2 entries")
    code, out = run("audit", "verify", "--bundle", str(bundle), extra={"KEEL_AUDIT_KEY": "x"})
    assert code == 1 and "BROKEN" in out
    data = bundle.read_bytes()
    at = data.index(b'"actor": "') + len(b'"actor": "')
    bundle.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1:])
    code, out = run("audit", "verify", "--bundle", str(bundle))
    assert code == 1 and "BROKEN at entry 1" in out
    bundle.write_bytes(data[: len(data) // 2])
    code, out = run("audit", "verify", "--bundle", str(bundle))
    assert code == 1 and "not valid JSON" in out
    assert run("audit", "verify", "--bundle", str(tmp_path / "missing.json"))[0] == 2
    assert run("audit", "export", "--since", "yesterday-ish", "--out", str(bundle))[0] == 2

    async def tamper() -> None:
        store = Store(database_url)
        await execute(store, where_seq(1).values(actor="mallory"))
        await store.aclose()

    asyncio.run(tamper())
    code, out = run("audit", "verify")
    assert code == 1 and out.startswith("BROKEN at entry 1")
    code, out = run("audit", "verify", "--json")
    assert code == 1 and orjson.loads(out)["broken_seq"] == 1


# --- what keel records -------------------------------------------------------------------------


async def test_key_creation_and_revocation_are_recorded_with_actor_and_hashes(
        store: Store) -> None:
    audit = AuditLog(store, key=KEY)
    _, record = await create_key(store, team="cx", feature="support", actor="ana", audit=audit)
    assert await revoke_key(store, record["id"], actor="bo", audit=audit)
    assert not await revoke_key(store, record["id"], actor="bo", audit=audit)
    revoked, created = (await audit.entries())[0]
    assert (created["action"], created["actor"], created["target"]) == (
        "key.create", "ana", record["id"])
    assert created["after_hash"] == content_hash(record) and created["before_hash"] is None
    assert created["detail"]["team"] == "cx" and "secret_hash" not in created["detail"]
    assert (revoked["action"], revoked["actor"], revoked["target"]) == (
        "key.revoke", "bo", record["id"])
    assert revoked["before_hash"] == created["after_hash"] != revoked["after_hash"]


async def test_prompt_pushes_and_label_moves_are_recorded_with_content_hashes(
        store: Store) -> None:
    audit = AuditLog(store, key=KEY)
    reg = PromptRegistry(store, audit=audit)
    base = {"name": "support-reply", "model": "mock",
            "messages": [{"role": "user", "content": "{{question}}"}]}
    v1, _ = await reg.push(PromptSpec.parse({**base, "params": {"temperature": 0.1}}),
                           message="first", author="ana")
    await reg.push(PromptSpec.parse({**base, "params": {"temperature": 0.1}}), author="ana")
    v2, _ = await reg.push(PromptSpec.parse({**base, "params": {"temperature": 0.7}}),
                           author="bo")
    await reg.set_label("support-reply@1", "production", actor="cy")
    await reg.set_label("support-reply@2", "production", actor="dee", reason="warmer")
    await reg.rollback("support-reply", "production", actor="eve", reason="complaints")
    entries = list(reversed((await audit.entries())[0]))
    got = [(e["action"], e["actor"], e["target"], e["before_hash"], e["after_hash"])
           for e in entries]
    h1, h2 = v1.content_hash, v2.content_hash
    assert got == [  # the unchanged second push added no version, so no entry
        ("prompt.push", "ana", "support-reply@1", None, h1),
        ("prompt.push", "bo", "support-reply@2", h1, h2),
        ("prompt.label", "cy", "support-reply@production", None, h1),
        ("prompt.label", "dee", "support-reply@production", h1, h2),
        ("prompt.rollback", "eve", "support-reply@production", h2, h1),
    ]
    assert entries[3]["detail"] == {"label": "production", "from_version": 1,
                                    "to_version": 2, "reason": "warmer"}
    assert (await audit.verify()).ok


async def test_config_is_recorded_when_it_changes_with_budget_changes_apart(
        store: Store, tmp_path: Path) -> None:
    audit = AuditLog(store, key=KEY)
    path = tmp_path / "keel.yaml"
    base = {"providers": [{"name": "mock", "kind": "mock"}],
            "models": [{"name": "mock", "provider": "mock"}]}
    one = parse_config({**base, "budgets": [{"scope": "team", "name": "cx", "usd": 10}]}, "t")
    two = parse_config({**base, "budgets": [{"scope": "team", "name": "cx", "usd": 20}]}, "t")
    path.write_text("budgets: ...\n")
    first = await audit.record_config(one, str(path), policies={}, actor="ops")
    assert [e["action"] for e in first] == ["config.change", "budgets.change"]
    assert first[0]["before_hash"] is None
    assert await audit.record_config(one, str(path), policies={},
                                     actor="ops") == []  # unchanged: no entry
    second = await audit.record_config(two, str(path), policies={}, actor="ops")
    change, budgets = second
    assert change["before_hash"] == first[0]["after_hash"] != change["after_hash"]
    detail = orjson.loads(change["detail"])
    assert detail["changed"] == ["budgets"]
    assert detail["file_sha256"] == hashlib.sha256(b"budgets: ...\n").hexdigest()
    assert budgets["before_hash"] == first[1]["after_hash"] != budgets["after_hash"]
    assert orjson.loads(budgets["detail"])["budgets"][0]["usd"] == 20


async def test_stored_trace_batches_are_digested_into_the_log(store: Store,
                                                              tmp_path: Path) -> None:
    audit = AuditLog(store, key=KEY)
    digest = TraceDigest()
    seen: list[list[Any]] = []
    writer = TraceWriter(store, spill_dir=tmp_path / "spill", batch_size=4)

    def observe(batch: list[Any]) -> None:
        seen.append([values for values, _ in batch])
        digest.observe(batch)

    writer.on_stored_rows = observe
    await writer.start()
    for i in range(10):
        writer.submit(make_trace(i))
    await writer.close()
    await digest.flush(audit)
    await digest.flush(audit)  # nothing new: no entry
    entries, _ = await audit.entries(action="traces.stored")
    assert len(entries) == 1
    detail = entries[0]["detail"]
    assert detail["traces"] == 10 == sum(n for n, _ in detail["batches"])
    assert [d for _, d in detail["batches"]] == [batch_digest(b) for b in seen]
    assert entries[0]["after_hash"] == hashlib.sha256(
        "".join(batch_digest(b) for b in seen).encode()).hexdigest()


def test_the_server_records_config_and_api_changes_and_serves_the_log(tmp_path: Path) -> None:
    with running_keel(tmp_path, audit_key=KEY) as k:
        h = k.admin_headers()
        r = httpx.post(k.url + "/api/keys", headers=h, json={"team": "cx"})
        assert r.status_code == 201
        key_id = r.json()["id"]
        r = httpx.get(k.url + "/api/audit", headers=h, params={"limit": 1})
        page = r.json()
        assert r.status_code == 200 and page["next_cursor"] is not None
        assert (page["data"][0]["action"], page["data"][0]["actor"],
                page["data"][0]["target"]) == ("key.create", "admin", key_id)
        r = httpx.get(k.url + "/api/audit", headers=h, params={"cursor": page["next_cursor"]})
        assert [e["action"] for e in r.json()["data"]] == ["config.change"]
        assert httpx.get(k.url + "/api/audit", headers=h,
                         params={"limit": "0"}).status_code == 400
        r = httpx.get(k.url + "/api/audit/verify", headers=h)
        assert r.status_code == 200 and r.json()["ok"] and r.json()["entries"] == 2
        key = k.create_key(team="cx")
        assert httpx.get(k.url + "/api/audit", headers={
            "authorization": f"Bearer {key}"}).status_code == 403
        r = httpx.post(k.base_url + "/chat/completions", headers={
            "authorization": f"Bearer {key}"},
            json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        audit, store = k.state.audit, k.state.store
    # after a graceful stop: the last trace batches are digested, and a signed checkpoint
    # covers everything

    async def check() -> None:
        s = Store(store.url)
        log = AuditLog(s, key=KEY)
        entries, _ = await log.entries()
        assert entries[0]["action"] == "traces.stored" and entries[0]["detail"]["traces"] == 1
        report = await log.verify()
        assert report.ok and report.signed and report.uncovered == 0
        assert audit.key == KEY
        await s.aclose()

    asyncio.run(check())
