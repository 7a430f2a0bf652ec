"""Answered means recorded across a crash, a full or read-only disk, and replicas that share
one data directory: real `keel serve` processes on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from keel.store import Store
from keel.store.schema import traces
from tests.support.keel import Keel, running_keel
from tests.support.process import KeelProcess

ADMIN = "sk-test-crash-admin"
CONFIG = """
providers:
  - {name: mock, kind: mock, latency: {p50_ms: 5, p99_ms: 20}}
models:
  - {name: mock, provider: mock, price: {input_per_mtok: 1, output_per_mtok: 2}}
"""


class Load:
    """Concurrent chat requests (every 4th streamed) against one keel; remembers the trace
    id of every request whose whole answer arrived."""

    def __init__(self, url: str, concurrency: int = 16) -> None:
        self.url = url
        self.concurrency = concurrency
        self.answered: list[str] = []
        self.failed = 0
        self._stop = False
        self._target = 0
        self._reached = asyncio.Event()

    async def until_answered(self, n: int) -> None:
        self._target = n
        if len(self.answered) < n:
            await self._reached.wait()

    def stop(self) -> None:
        self._stop = True

    async def run(self, total: int, *, stop_when: float | None = None) -> None:
        headers = {"authorization": f"Bearer {ADMIN}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30,
                                     limits=httpx.Limits(max_connections=self.concurrency)
                                     ) as client:
            sent = 0

            async def worker() -> None:
                nonlocal sent
                while sent < total and not self._stop:
                    if stop_when is not None and time.monotonic() >= stop_when:
                        return
                    i = sent
                    sent += 1
                    await self.one(client, i)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def one(self, client: httpx.AsyncClient, i: int) -> None:
        stream = i % 4 == 0
        body = {"model": "mock", "stream": stream,
                "messages": [{"role": "user", "content": f"question {i}"}]}
        try:
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                data = b"".join([chunk async for chunk in r.aiter_bytes()])
                if r.status_code != 200 or (stream and b"[DONE]" not in data):
                    self.failed += 1
                    return
                self.answered.append(r.headers["x-keel-trace-id"])
                if self._target and len(self.answered) >= self._target:
                    self._reached.set()
        except httpx.TransportError:
            self.failed += 1  # the server went away mid-request: not an answer


async def stored_ids(database_url: str) -> set[str]:
    store = Store(database_url)
    try:
        async with store.connect() as conn:
            return {str(r[0]) for r in (await conn.execute(sa.select(traces.c.id))).all()}
    finally:
        await store.aclose()


def wait_stored(database_url: str, ids: list[str], timeout_s: float = 60) -> set[str]:
    """The answered ids not stored yet, after waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    missing = set(ids)
    while time.monotonic() < deadline:
        missing = set(ids) - asyncio.run(stored_ids(database_url))
        if not missing:
            break
        time.sleep(0.25)
    return missing


@pytest.mark.slow
def test_sigkill_under_load_loses_no_answered_trace(tmp_path: Path, database_url: str) -> None:
    # A long flush interval and big batches: at the kill, many answered traces are still
    # in the writer's memory, so only the journal can save them.
    env = {"KEEL_TRACE_FLUSH_INTERVAL_S": "3", "KEEL_TRACE_BATCH_SIZE": "5000"}
    k = KeelProcess(tmp_path, CONFIG, database_url, ADMIN, **env)
    load = Load(k.url)

    async def load_then_kill() -> None:
        task = asyncio.create_task(load.run(100_000))
        await load.until_answered(600)
        k.proc.send_signal(signal.SIGKILL)
        load.stop()
        await task

    try:
        asyncio.run(load_then_kill())
        assert k.proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        k._log.close()
    answered = list(load.answered)
    before = answered and set(answered) - asyncio.run(stored_ids(database_url))
    assert before, "the kill should leave answered traces that were not stored yet"
    k2 = KeelProcess(tmp_path, CONFIG, database_url, ADMIN, **env)  # same data dir
    try:
        assert wait_stored(database_url, answered) == set()
    finally:
        assert k2.stop() == 0
    assert not list((tmp_path / "keel-data" / "spill").glob("journal-*.jsonl"))


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "32m") -> Iterator[Path]:
    """A tmpfs of its own at ``path`` (root only): it fills up, and can be made
    read-only, without touching the machine's disks."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs for the full-disk scenario")
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(fs: Path) -> Path:
    """Fill ``fs`` to the last byte; returns the filler to delete."""
    filler = fs / "filler"
    for block in (1 << 16, 512):  # then the last partial blocks
        with contextlib.suppress(OSError), open(filler, "ab", buffering=0) as fh:
            while True:
                fh.write(b"\0" * block)
    return filler


def ready(url: str) -> dict[str, object]:
    r = httpx.get(url + "/ready", timeout=5)
    body: dict[str, object] = r.json()
    body["http_status"] = r.status_code
    return body


@pytest.mark.slow
def test_full_disk_then_recovery_stores_every_answered_trace(tmp_path: Path) -> None:
    fs_dir = tmp_path / "fs"
    with small_filesystem(fs_dir) as fs:
        db = f"sqlite:///{fs / 'keel.db'}"
        k = KeelProcess(tmp_path, CONFIG, db, ADMIN, KEEL_DATA_DIR=str(fs / "data"),
                        KEEL_TRACE_FLUSH_INTERVAL_S="0.05")
        try:
            asyncio.run(Load(k.url).run(50))
            filler = fill(fs)
            load = Load(k.url)
            asyncio.run(load.run(600))
            assert len(load.answered) == 600, "keel keeps answering on a full disk"
            health = ready(k.url)
            assert health["http_status"] == 200 and health["status"] == "degraded"
            writer = health["checks"]["trace_writer"]  # type: ignore[index]
            assert writer["state"] == "degraded"
            filler.unlink()  # the disk has room again: the same process resumes
            assert wait_stored(db, load.answered) == set()
            after = ready(k.url)
            assert after["status"] == "ready", after
            later = Load(k.url)
            asyncio.run(later.run(100))
            assert wait_stored(db, later.answered) == set()
            code = k.stop()
        finally:
            if k.proc.poll() is None:
                k.proc.kill()
        assert code == 0, k.log()
        assert len(asyncio.run(stored_ids(db))) == 750


async def set_read_only(database_url: str, on: bool) -> None:
    """Make the PostgreSQL database refuse writes (as a failed-over or protected replica
    does): new sessions start read-only, and existing ones are ended so the pool
    reconnects into read-only sessions."""
    import asyncpg

    base, name = database_url.rsplit("/", 1)
    # From the maintenance database: a read-only session could not undo it.
    conn = await asyncpg.connect(base.replace("postgresql://", "postgres://") + "/postgres")
    try:
        await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = '
                           f"{'on' if on else 'off'}")
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    finally:
        await conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["postgresql"])
def test_read_only_database_then_writable_again_stores_every_trace(
        tmp_path: Path, database_url: str) -> None:
    k = KeelProcess(tmp_path, CONFIG, database_url, ADMIN, KEEL_TRACE_FLUSH_INTERVAL_S="0.05")
    try:
        first = Load(k.url)
        asyncio.run(first.run(20))
        assert wait_stored(database_url, first.answered) == set()
        asyncio.run(set_read_only(database_url, True))
        load = Load(k.url)
        asyncio.run(load.run(300))
        assert len(load.answered) == 300
        time.sleep(0.5)
        health = ready(k.url)
        assert health["http_status"] == 200 and health["status"] == "degraded", health
        asyncio.run(set_read_only(database_url, False))
        assert wait_stored(database_url, load.answered) == set()
        code = k.stop()
    finally:
        if k.proc.poll() is None:
            k.proc.kill()
    assert code == 0, k.log()
    assert len(asyncio.run(stored_ids(database_url))) == 320


@pytest.mark.slow
def test_two_replicas_sharing_one_data_directory_store_everything(
        tmp_path: Path, database_url: str) -> None:
    """Both replicas journal into one directory (a shared volume); neither replays the
    other's live journal, and a killed one's journal is replayed by the survivor."""
    shared = str(tmp_path / "shared-data")
    small = {"KEEL_DATA_DIR": shared, "KEEL_TRACE_QUEUE_SIZE": "8",
             "KEEL_TRACE_BATCH_SIZE": "4", "KEEL_TRACE_FLUSH_INTERVAL_S": "0.05"}
    a = KeelProcess(tmp_path, CONFIG, database_url, ADMIN, name="a", **small)
    b = KeelProcess(tmp_path, CONFIG, database_url, ADMIN, name="b", **small)
    la, lb = Load(a.url, 24), Load(b.url, 24)

    async def both() -> None:
        await asyncio.gather(la.run(800), lb.run(800))

    try:
        asyncio.run(both())
        assert len(la.answered) == len(lb.answered) == 800
        assert wait_stored(database_url, la.answered + lb.answered) == set()
        # Kill one mid-load: the survivor replays its journal (a shared volume).
        lk = Load(b.url, 16)

        async def kill_b() -> None:
            task = asyncio.create_task(lk.run(100_000))
            await lk.until_answered(300)
            b.proc.send_signal(signal.SIGKILL)
            lk.stop()
            await task

        asyncio.run(kill_b())
        b.proc.wait(timeout=30)
        assert wait_stored(database_url, lk.answered) == set()
    finally:
        assert a.stop() == 0
        if b.proc.poll() is None:
            b.proc.kill()
        b._log.close()
    ids = asyncio.run(stored_ids(database_url))
    assert set(la.answered + lb.answered + lk.answered) <= ids


def test_journal_files_are_private_to_their_process(tmp_path: Path) -> None:
    """A journal segment is never taken from a live owner (the flock), whatever its age."""
    from keel.telemetry.journal import Journal

    one, two = Journal(tmp_path), Journal(tmp_path)
    one.open()
    two.open()
    assert one.append(b'[["x"], null]\n') is not None
    assert [p for _, p in two.orphans()] == []  # one is alive
    one.close(keep=True)
    found = [paths for _, paths in two.orphans()]
    assert len(found) == 1 and found[0][0].name.startswith(f"journal-{one.owner}-")
    two.close(keep=False)


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["postgresql"])
def test_shutdown_that_cannot_drain_exits_non_zero_and_keeps_the_traces(
        tmp_path: Path, database_url: str) -> None:
    k = KeelProcess(tmp_path, CONFIG, database_url, ADMIN, KEEL_TRACE_FLUSH_INTERVAL_S="0.05")
    try:
        asyncio.run(set_read_only(database_url, True))
        load = Load(k.url)
        asyncio.run(load.run(200))
        assert len(load.answered) == 200
        code = k.stop()
    finally:
        asyncio.run(set_read_only(database_url, False))
        if k.proc.poll() is None:
            k.proc.kill()
    assert code != 0, "a process that could not store its traces must not exit 0"
    assert "traces not stored" in k.log()
    k2 = KeelProcess(tmp_path, CONFIG, database_url, ADMIN)  # the same data directory
    try:
        assert wait_stored(database_url, load.answered) == set()
    finally:
        assert k2.stop() == 0


def test_poison_requests_then_a_hundred_normal_ones_are_all_stored(
        tmp_path: Path, database_url: str) -> None:
    """Requests whose values no column holds as sent (a 300-character user and session, a
    feature past 128 characters, NUL, a lone surrogate escaped in JSON) are answered and
    stored, and so is every request after them, on SQLite and PostgreSQL."""
    poison = [
        {"user": "u" * 300, "metadata": {"session": "s" * 300}},
        {"user": "nul\u0000user"},
        {"user": "surrogate \ud800 user"},
        {"metadata": {"feature": "f" * 200}},
        {"messages": [{"role": "user", "content": "lone \udc80 surrogate"}]},
    ]
    with running_keel(tmp_path, database_url=database_url) as k:
        ids: list[str] = []
        with httpx.Client(base_url=k.base_url, headers=k.admin_headers()) as c:
            for extra in poison:
                body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}],
                        **extra}
                # json.dumps (ensure_ascii) writes lone surrogates as \\u escapes, as a
                # client in any language may send them.
                r = c.post("/chat/completions", content=json.dumps(body),
                           headers={"content-type": "application/json"})
                assert r.status_code < 500, r.text
                ids.append(r.headers["x-keel-trace-id"])
            for i in range(100):
                r = c.post("/chat/completions", json={
                    "model": "mock", "messages": [{"role": "user", "content": f"q{i}"}]})
                assert r.status_code == 200
                ids.append(r.headers["x-keel-trace-id"])
        k.flush()
        stored = k.run(stored_ids_of(k))
        assert set(ids) <= stored
        assert k.state.writer.rejected == 0 and k.state.writer.restarts == 0


async def stored_ids_of(k: Keel) -> set[str]:
    async with k.state.store.connect() as conn:
        return {str(r[0]) for r in (await conn.execute(sa.select(traces.c.id))).all()}
