"""Redis going away mid-run: keel keeps serving with its documented behaviour (budgets fail
closed unless configured open, rate limits fail open, the cache misses), logs the
degradation, and recovers when Redis returns."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.process import KeelProcess
from tests.support.servers import free_port

CONFIG = """
providers:
  - {name: mock, kind: mock}
models:
  - {name: mock, provider: mock, price: {input_per_mtok: 1, output_per_mtok: 1}}
routes:
  - {name: cached, targets: [{model: mock}], cache: {ttl_s: 300}}
limits:
  - {scope: feature, name: limited, rpm: 1000}
budgets:
  - {scope: feature, name: strict, usd: 100}
  - {scope: feature, name: lenient, usd: 100, on_store_error: open}
"""
HI = [{"role": "user", "content": "hi"}]


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        import redis

        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[KeelProcess, PrivateRedis]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; install Redis to run this test")
    r = PrivateRedis(tmp_path)
    r.start()
    keel = KeelProcess(tmp_path, CONFIG, f"sqlite:///{tmp_path / 'keel.db'}", "sk-outage",
                       KEEL_REDIS_URL=f"redis://127.0.0.1:{r.port}/0")
    try:
        yield keel, r
    finally:
        r.stop()
        assert keel.stop() == 0


def call(k: KeelProcess, model: str = "mock", feature: str = "default") -> httpx.Response:
    return httpx.post(k.url + "/v1/chat/completions", timeout=10,
                      json={"model": model, "messages": HI},
                      headers={**k.headers, "x-keel-feature": feature})


@pytest.mark.slow
def test_gateway_degrades_as_documented_and_recovers(setup: tuple[KeelProcess, PrivateRedis]
                                                     ) -> None:
    keel, redis_server = setup
    for feature in ("strict", "lenient", "limited", "default"):
        assert call(keel, feature=feature).status_code == 200
    assert call(keel, model="cached").status_code == 200

    redis_server.stop()
    started = time.monotonic()
    strict = call(keel, feature="strict")
    assert strict.status_code == 503
    assert strict.json()["error"]["code"] == "limits_unavailable"
    assert call(keel, feature="lenient").status_code == 200   # on_store_error: open
    assert call(keel, feature="limited").status_code == 200   # rate limits fail open
    assert call(keel, feature="default").status_code == 200   # nothing to check
    assert call(keel, model="cached").status_code == 200      # cache: a miss, not a failure
    assert time.monotonic() - started < 8, "a dead Redis must not stall requests"
    ready = httpx.get(keel.url + "/ready")  # still serving: degraded, not drained
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["redis"].startswith("unreachable")
    assert httpx.get(keel.url + "/health").status_code == 200
    log = keel.log()
    assert "WARNING" in log and "redis" in log.lower()
    assert "Traceback" not in log

    redis_server.start()  # same port: keel reconnects by itself
    deadline = time.monotonic() + 10
    while call(keel, feature="strict").status_code != 200:
        assert time.monotonic() < deadline, "budgets did not recover with Redis"
        time.sleep(0.3)
    assert httpx.get(keel.url + "/ready").json()["status"] == "ready"
