"""redis (installed here) is imported only once Redis is configured: keel built, started and
answering with the default SQLite config never imports it (keel.config.extras binds its
exception classes on first use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ADMIN = "sk-test-redis-import-admin"
# builds keel (default config, SQLite under argv[1]), starts it, sends one chat request, and
# prints the answer's status and whether redis was imported at each step
PROBE = """
import json, sys
from starlette.testclient import TestClient
from keel.config import Settings, default_config
from keel.server.app import create_app

steps = {}
d = sys.argv[1]
app = create_app(Settings(data_dir=d, database_url=f"sqlite:///{d}/keel.db",
                          master_key=sys.argv[2]), default_config())
steps["built"] = "redis" in sys.modules
with TestClient(app) as client:
    steps["started"] = "redis" in sys.modules
    r = client.post("/v1/chat/completions", headers={"authorization": f"Bearer {sys.argv[2]}"},
                    json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
    steps["status"] = r.status_code
    steps["answered"] = "redis" in sys.modules
print(json.dumps(steps))
"""


def probe(tmp_path: Path, **env: str) -> dict[str, object]:
    data = tmp_path / "data"
    data.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    done = subprocess.run([sys.executable, "-c", PROBE, str(data), ADMIN],
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_keel_with_the_default_sqlite_config_never_imports_redis(tmp_path: Path) -> None:
    pytest.importorskip("redis")  # the point: installed, yet not imported
    assert probe(tmp_path) == {"built": False, "started": False, "status": 200,
                               "answered": False}


def test_keel_with_a_redis_url_imports_redis_when_it_starts(
        tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    steps = probe(tmp_path, KEEL_REDIS_URL=redis_url, KEEL_REDIS_PREFIX=redis_prefix)
    assert steps["started"] is True and steps["status"] == 200
