"""Requests answered == traces stored: under concurrent load and across a SIGTERM,
against a real `keel serve` process, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from keel.store import Store
from keel.store.traces import count_traces
from tests.support.servers import free_port

ADMIN = "sk-test-shutdown-admin"
CONFIG = """
providers:
  - {name: mock, kind: mock, latency: {p50_ms: 15, p99_ms: 60}}
models:
  - {name: mock, provider: mock, price: {input_per_mtok: 1, output_per_mtok: 2}}
"""


def start_keel(tmp_path: Path, database_url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text(CONFIG)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "--config", str(cfg), "--port", str(port)],
        env={**os.environ, "KEEL_DATA_DIR": str(tmp_path / "data"),
             "KEEL_DATABASE_URL": database_url, "KEEL_MASTER_KEY": ADMIN, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "exited")
        try:
            if httpx.get(url + "/health", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("keel did not start")


async def load(url: str, total: int, concurrency: int, on_progress: int = -1,
               proc: subprocess.Popen[bytes] | None = None) -> tuple[int, int]:
    """Send `total` requests (every 4th streamed); returns (answered, failed to connect)."""
    answered = refused = 0
    sent = 0
    headers = {"authorization": f"Bearer {ADMIN}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=30) as client:
        async def one(i: int) -> None:
            nonlocal answered, refused
            body = {"model": "mock", "stream": i % 4 == 0,
                    "messages": [{"role": "user", "content": f"question {i}"}]}
            try:
                async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                    async for _ in r.aiter_bytes():
                        pass
                    answered += 1
            except httpx.TransportError:
                refused += 1

        async def worker() -> None:
            nonlocal sent
            while sent < total:
                i = sent
                sent += 1
                if proc is not None and i == on_progress:
                    proc.send_signal(signal.SIGTERM)
                await one(i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered, refused


async def stored(database_url: str) -> int:
    store = Store(database_url)
    try:
        return await count_traces(store)
    finally:
        await store.aclose()


@pytest.mark.slow
def test_every_answered_request_is_stored_under_load(tmp_path: Path, database_url: str) -> None:
    proc, url = start_keel(tmp_path, database_url)
    try:
        answered, refused = asyncio.run(load(url, total=1500, concurrency=48))
        assert (answered, refused) == (1500, 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert asyncio.run(stored(database_url)) == answered


@pytest.mark.slow
def test_sigterm_mid_load_drains_in_flight_requests_and_traces(
        tmp_path: Path, database_url: str) -> None:
    proc, url = start_keel(tmp_path, database_url)
    answered, refused = asyncio.run(load(url, total=3000, concurrency=32, on_progress=600,
                                         proc=proc))
    assert proc.wait(timeout=60) == 0, proc.stdout.read().decode() if proc.stdout else ""
    assert answered >= 600 - 32, "requests sent before the signal were answered"
    assert refused > 0, "the server stopped accepting work after SIGTERM"
    assert asyncio.run(stored(database_url)) == answered


@pytest.mark.slow
def test_tiny_queue_spills_to_disk_and_still_stores_everything(
        tmp_path: Path, database_url: str) -> None:
    proc, url = start_keel(tmp_path, database_url, KEEL_TRACE_QUEUE_SIZE="4",
                           KEEL_TRACE_BATCH_SIZE="2")
    try:
        answered, refused = asyncio.run(load(url, total=600, concurrency=48))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert refused == 0
    assert asyncio.run(stored(database_url)) == answered == 600
    assert not list((tmp_path / "data" / "spill").glob("*.jsonl"))
