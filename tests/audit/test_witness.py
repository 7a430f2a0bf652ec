"""The audit witness: every checkpoint published outside the database (an append-only file,
an HTTP receiver, the log), and verification against it catching what the database alone
cannot: checkpoints deleted, the log wiped, history recomputed, the tail cut off."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from keel.audit import AuditLog
from keel.audit.chain import entry_hash
from keel.audit.witness import (
    WITNESS_FILE,
    FileSink,
    HttpSink,
    Witness,
    WitnessError,
    parse_known,
    read_known,
)
from keel.cli.main import main
from keel.config import Settings
from keel.errors import ConfigError
from keel.store import Store
from keel.store.schema import audit_checkpoints, audit_entries
from tests.audit.test_audit import KEY, execute, fill, rows, where_seq
from tests.support.keel import running_keel


def witnessed_log(store: Store, path: Path, *, key: str | None = KEY) -> AuditLog:
    return AuditLog(store, key=key, checkpoint_every=3, witness=Witness([FileSink(path)]))


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# --- the attacks, as a database owner would carry them out -------------------------------------


async def delete_checkpoints(store: Store) -> None:
    await execute(store, audit_checkpoints.delete())


async def wipe_log(store: Store) -> None:
    await execute(store, audit_checkpoints.delete(), audit_entries.delete())


async def rewrite_history(store: Store) -> None:
    """Delete the checkpoints, edit entry 5 and recompute every later hash: the chain is
    intact again, and no stored checkpoint contradicts it."""
    await delete_checkpoints(store)
    stored = await rows(store)
    prev = stored[3]["prev_hash"]
    for row in stored[3:]:
        row["prev_hash"] = prev
        if row["seq"] == 5:
            row["actor"] = "someone-else"
        row["hash"] = prev = entry_hash(row)
        await execute(store, where_seq(row["seq"]).values(
            actor=row["actor"], prev_hash=row["prev_hash"], hash=row["hash"]))


async def truncate_tail(store: Store) -> None:
    """Cut entries 5.. off, and the checkpoints that would show it."""
    await execute(store, audit_entries.delete().where(audit_entries.c.seq >= 5),
                  audit_checkpoints.delete().where(audit_checkpoints.c.size >= 5))


# attack, the first entry named (None: a checkpoint is named), words the problem must hold
ATTACKS: dict[str, tuple[Callable[[Store], Any], int | None, tuple[str, ...]]] = {
    "delete_checkpoints": (delete_checkpoints, None,
                           ("(size 3, witnessed in", "not in the database",
                            "checkpoints were deleted")),
    "wipe_log": (wipe_log, 1, ("truncated", "only 0 are there", "entries 1..6 are missing")),
    "rewrite_history": (rewrite_history, 5, ("entries 5..6", "tree head", "witnessed in",
                                             "rewritten")),
    "truncate_tail": (truncate_tail, 5, ("truncated", "only 4 are there",
                                         "entries 5..6 are missing")),
}


# --- publishing --------------------------------------------------------------------------------


async def test_each_checkpoint_is_appended_to_the_witness_and_logged_at_a_visible_level(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "witness" / "audit.jsonl"  # its directory is created
    audit = witnessed_log(store, path)
    caplog.set_level(logging.DEBUG, logger="keel.audit")
    await fill(audit)  # 7 entries: checkpoints at 3 and 6
    first = path.read_bytes()
    assert len(first.splitlines()) == 2
    await audit.checkpoint()  # covering entry 7 too: appended, the earlier lines untouched
    assert path.read_bytes().startswith(first)
    stored = await audit.checkpoints()
    got = lines(path)
    assert [(w["id"], w["size"], w["root"], w["head"], w["at"], w["key_id"], w["signature"])
            for w in got] == [(c["id"], c["size"], c["root"], c["head"], c["at"],
                               c["key_id"], c["signature"]) for c in stored]
    assert [w["size"] for w in got] == [3, 6, 7] and all(w["signature"] for w in got)
    assert all(w["format"] == "keel-audit-witness" and w["version"] == 1 for w in got)
    assert got[1]["peaks"] == orjson.loads(stored[1]["peaks"])
    # keel logs at Settings().log_level by default: each checkpoint is above it
    visible = logging.getLevelName(Settings().log_level.upper())
    logged = [r for r in caplog.records if r.name == "keel.audit" and "checkpoint #" in
              r.getMessage()]
    assert len(logged) == 3 and all(r.levelno >= visible for r in logged)
    for r, c in zip(logged, stored, strict=True):
        assert f"size {c['size']}" in r.getMessage() and c["root"] in r.getMessage()


def test_the_setting_names_files_and_urls_and_defaults_to_the_data_dir(tmp_path: Path) -> None:
    default = Witness.from_setting(None, str(tmp_path))
    assert default.files == [tmp_path / WITNESS_FILE]
    assert Witness.from_setting("none", str(tmp_path)).sinks == []
    both = Witness.from_setting(f" {tmp_path / 'a.jsonl'} , https://u:secret@w.example/cp?t=1",
                                str(tmp_path))
    assert both.files == [tmp_path / "a.jsonl"]
    assert [str(s) for s in both.sinks if isinstance(s, HttpSink)] == ["https://w.example/cp"]
    with pytest.raises(ConfigError, match="ftp://"):
        Witness.from_setting("ftp://w.example/cp", str(tmp_path))
    with pytest.raises(ConfigError, match="empty"):
        Witness.from_setting(" , ", str(tmp_path))
    settings = Settings(data_dir=str(tmp_path), audit_witness=str(tmp_path / "b.jsonl"))
    assert AuditLog.from_settings(Store("sqlite:///:memory:"), settings).witness.files == [
        tmp_path / "b.jsonl"]


class Receiver:
    """A real HTTP witness on loopback: keeps what it is sent, answers ``status``."""

    def __init__(self, status: int = 204) -> None:
        self.bodies: list[bytes] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                assert self.headers["content-type"] == "application/json"
                outer.bodies.append(body)
                self.send_response(outer.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/checkpoints"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


async def test_checkpoints_are_posted_to_an_http_witness(store: Store, tmp_path: Path,
                                                         receiver: Receiver) -> None:
    path = tmp_path / "w.jsonl"
    witness = Witness([FileSink(path), HttpSink(receiver.url)])
    audit = AuditLog(store, key=KEY, checkpoint_every=3, witness=witness)
    await fill(audit)
    witness.drain()
    assert sorted(receiver.bodies) == sorted(path.read_bytes().splitlines(keepends=True))
    assert [orjson.loads(b)["size"] for b in sorted(receiver.bodies,
                                                    key=lambda b: orjson.loads(b)["id"])] == [3, 6]


async def test_a_failing_witness_is_logged_and_never_fails_the_append(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the witness's directory should be")
    with Receiver(status=500) as failing:
        refused = Receiver()  # bound, never listening... closed at once: connection refused
        refused.server.server_close()
        witness = Witness([FileSink(blocker / "w.jsonl"), HttpSink(failing.url),
                           HttpSink(refused.url + "?token=s3cret")])
        audit = AuditLog(store, key=KEY, checkpoint_every=3, witness=witness)
        written = await fill(audit)
        witness.drain()
    assert len(written) == 7 and len(await audit.checkpoints()) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("to the witness file" in m and str(blocker) in m for m in errors) == 2
    assert sum("500" in m and failing.url in m for m in errors) == 2
    assert sum("refused" in m.lower() for m in errors) == 2
    assert not any("s3cret" in m for m in errors)


# --- verifying against the witness -------------------------------------------------------------


async def test_an_untouched_log_verifies_against_its_witness(store: Store,
                                                             tmp_path: Path) -> None:
    audit = witnessed_log(store, tmp_path / "w.jsonl")
    await fill(audit)
    report = await audit.verify()
    assert report.ok, report.problem
    assert (report.witnessed, report.witnessed_size, report.checkpoints) == (2, 6, 2)
    assert not any("witness" in n for n in report.notes)
    assert report.to_json()["witnessed"] == 2


@pytest.mark.parametrize("attack", ATTACKS)
async def test_each_attack_fails_verification_against_the_witness(
        store: Store, tmp_path: Path, attack: str) -> None:
    tamper, seq, words = ATTACKS[attack]
    audit = witnessed_log(store, tmp_path / "w.jsonl")
    await fill(audit)
    first_id = (await audit.checkpoints())[0]["id"]
    await tamper(store)
    # the database alone cannot tell: the attack is made to verify on its own
    assert (await audit.verify(witness=False)).ok
    report = await audit.verify()
    assert not report.ok
    assert report.broken_seq == seq, report.problem
    for word in words:
        assert word in (report.problem or ""), (word, report.problem)
    if seq is None:
        assert report.broken_checkpoint == first_id


async def test_fresh_checkpoints_over_a_rewritten_history_do_not_hide_it(
        store: Store, tmp_path: Path) -> None:
    """Without the key, a forger can checkpoint the forged log again (unsigned); the
    witnessed tree head still disagrees, and the witness line's signature is checked."""
    path = tmp_path / "w.jsonl"
    audit = witnessed_log(store, path)
    await fill(audit)
    await rewrite_history(store)
    forger = AuditLog(store, checkpoint_every=3)  # no key, no witness
    assert await forger.checkpoint() is not None and (await forger.verify()).ok
    report = await audit.verify()
    assert not report.ok and report.broken_seq == 5, report.problem
    # ... nor does rewriting the witness line without the key
    forged = lines(path)
    forged[1].update(root=(await forger.checkpoints())[0]["root"])
    path.write_bytes(b"".join(orjson.dumps(w) + b"\n" for w in forged))
    report = await audit.verify()
    assert not report.ok and "signature does not match KEEL_AUDIT_KEY" in (report.problem or "")


async def test_a_stored_checkpoint_that_differs_from_its_witnessed_twin_fails(
        store: Store, tmp_path: Path) -> None:
    audit = witnessed_log(store, tmp_path / "w.jsonl", key=None)  # unsigned: only the twin
    await fill(audit)
    first = (await audit.checkpoints())[0]
    await execute(store, audit_checkpoints.update().where(
        audit_checkpoints.c.id == first["id"]).values(at=first["at"] + 3600))
    report = await audit.verify()
    assert not report.ok and report.broken_checkpoint == first["id"]
    assert "its at differ" in (report.problem or "") and "altered or replaced" in (
        report.problem or "")


async def test_a_damaged_witness_file_fails_verification_and_names_the_line(
        store: Store, tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    audit = witnessed_log(store, path)
    await fill(audit)
    data = path.read_bytes()
    path.write_bytes(data + data[: len(data) // 3])  # a third line cut short
    report = await audit.verify()
    assert not report.ok and f"{path} line 3 is not JSON" in (report.problem or "")
    path.write_bytes(data + b'{"format": "keel-audit-witness", "size": -1}\n')
    report = await audit.verify()
    assert not report.ok and "line 3: not a checkpoint ('size' must be a positive" in (
        report.problem or "")


async def test_known_checkpoints_and_bundles_catch_attacks_without_the_witness_file(
        store: Store, tmp_path: Path) -> None:
    audit = AuditLog(store, key=KEY, checkpoint_every=3)  # publishes nowhere
    await fill(audit)
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(orjson.dumps(await audit.export()))
    cp6 = (await audit.checkpoints())[1]
    given = parse_known(f"6:{cp6['root']}")
    assert (await audit.verify([given])).ok
    assert (await audit.verify(read_known(bundle))).ok
    wrong = parse_known(f"6:{'ab' * 32}")
    report = await audit.verify([wrong])
    assert not report.ok and "given with --checkpoint" in (report.problem or "")
    await rewrite_history(store)
    report = await audit.verify(read_known(bundle))  # its checkpoints' peaks narrow it down
    assert not report.ok and report.broken_seq == 5, report.problem
    report = await audit.verify([given])  # a bare tree head: somewhere in 1..6
    assert not report.ok and "entries 1..6 do not match" in (report.problem or "")
    await wipe_log(store)
    report = await audit.verify([given])
    assert not report.ok and "only 0 are there" in (report.problem or "")
    with pytest.raises(WitnessError, match="SIZE:TREEHEAD"):
        parse_known("six:abc")


# --- keel audit verify and /api/audit/verify ---------------------------------------------------


@pytest.mark.parametrize("attack", ATTACKS)
def test_cli_verify_uses_the_default_witness_and_fails_each_attack(
        tmp_path: Path, database_url: str, attack: str) -> None:
    data_dir = tmp_path / "data"
    env = {"KEEL_DATA_DIR": str(data_dir), "KEEL_DATABASE_URL": database_url,
           "KEEL_AUDIT_KEY": KEY, "KEEL_AUDIT_CHECKPOINT_EVERY": "3"}
    settings = Settings(data_dir=str(data_dir), database_url=database_url, audit_key=KEY,
                        audit_checkpoint_every=3)
    tamper, seq, words = ATTACKS[attack]

    async def setup(tampered: bool) -> None:
        store = Store(database_url)
        await store.upgrade()
        try:
            if tampered:
                await tamper(store)
            else:  # as keel itself writes: settings from the environment
                await fill(AuditLog.from_settings(store, settings))
        finally:
            await store.aclose()

    def verify(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["audit", "verify", *args], env=env,
                                    catch_exceptions=False)
        return result.exit_code, result.output

    asyncio.run(setup(False))
    assert (data_dir / WITNESS_FILE).is_file()
    code, out = verify()
    assert code == 0 and "witnessed: 2 checkpoint(s)" in out, out
    asyncio.run(setup(True))
    code, out = verify()
    assert code == 1, out
    assert out.startswith(f"BROKEN at entry {seq}:" if seq else "BROKEN at checkpoint #"), out
    for word in words:
        assert word in out, (word, out)


def test_cli_verify_takes_a_witness_file_a_bundle_or_a_checkpoint(
        tmp_path: Path, database_url: str) -> None:
    env = {"KEEL_DATA_DIR": str(tmp_path / "data"), "KEEL_DATABASE_URL": database_url,
           "KEEL_AUDIT_KEY": KEY, "KEEL_AUDIT_CHECKPOINT_EVERY": "3",
           "KEEL_AUDIT_WITNESS": str(tmp_path / "elsewhere.jsonl")}

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["audit", *args], env=env, catch_exceptions=False)
        return result.exit_code, result.output

    async def go(fn: Callable[[Store], Any]) -> Any:
        store = Store(database_url)
        await store.upgrade()
        try:
            return await fn(store)
        finally:
            await store.aclose()

    asyncio.run(go(lambda s: fill(AuditLog(s, key=KEY, checkpoint_every=3))))  # no witness
    code, out = run("checkpoint")  # through the CLI: published to KEEL_AUDIT_WITNESS
    assert code == 0 and "entries 1..7" in out
    root = out.split("root ")[1].split(",")[0]
    assert lines(tmp_path / "elsewhere.jsonl")[0]["root"] == root
    bundle = tmp_path / "bundle.json"
    assert run("export", "--out", str(bundle))[0] == 0
    code, out = run("verify", "--checkpoint", f"7:{root}")
    assert code == 0 and "witnessed: 2 checkpoint(s)" in out, out  # + the witness file
    asyncio.run(go(rewrite_history))
    for args in (("--checkpoint", f"7:{root}"), ("--witness", str(bundle)),
                 ("--witness", str(tmp_path / "elsewhere.jsonl"))):
        code, out = run("verify", *args)
        assert code == 1 and "BROKEN at entry 5" in out, (args, out)
    code, out = run("verify", "--checkpoint", "7:nothex")
    assert code == 2 and "SIZE:TREEHEAD" in out
    code, out = run("verify", "--bundle", str(bundle), "--checkpoint", f"7:{root}")
    assert code == 2 and "checked on its own" in out


def test_the_server_publishes_checkpoints_and_its_verify_api_checks_them(
        tmp_path: Path, database_url: str) -> None:
    with running_keel(tmp_path, database_url=database_url, audit_key=KEY,
                      audit_checkpoint_every=3) as k:
        h = k.admin_headers()
        for _ in range(3):  # config.change + 3 key.create: a checkpoint at 3
            assert httpx.post(k.url + "/api/keys", headers=h, json={"team": "cx"}
                              ).status_code == 201
        witness = Path(k.state.settings.data_dir) / WITNESS_FILE
        assert [w["size"] for w in lines(witness)] == [3]
        r = httpx.get(k.url + "/api/audit/verify", headers=h)
        assert r.json()["ok"] and r.json()["witnessed"] == 1, r.json()
        async def tamper() -> None:
            store = Store(k.state.store.url)
            await delete_checkpoints(store)
            await store.aclose()

        asyncio.run(tamper())
        r = httpx.get(k.url + "/api/audit/verify", headers=h)
        assert r.status_code == 200 and not r.json()["ok"]
        assert "not in the database" in r.json()["problem"]
