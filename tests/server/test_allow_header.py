"""The ``Allow`` header of a 405 lists every method the path's routes take, sorted: the same
in every process, whatever its hash seed (a set's order changes with it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# builds keel's app (default config) and prints the Allow header and message of each 405
PROBE = """
import asyncio, json, sys
import httpx
from keel.config import Settings, default_config
from keel.server.app import create_app

async def main():
    d = sys.argv[1]
    app = create_app(Settings(data_dir=d, database_url=f"sqlite:///{d}/keel.db"),
                     default_config())
    transport = httpx.ASGITransport(app=app)
    out = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
        for method, path in json.loads(sys.argv[2]):
            r = await client.request(method, path)
            out[f"{method} {path}"] = [r.status_code, r.headers.get("allow"),
                                       r.json()["error"]["message"]]
    print(json.dumps(out))

asyncio.run(main())
"""
ASKED = [("POST", "/health"), ("PUT", "/metrics"), ("DELETE", "/api/keys"),
         ("GET", "/v1/chat/completions")]


def answers(tmp_path: Path, seed: str) -> dict[str, list[object]]:
    data = tmp_path / f"seed-{seed}"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env["PYTHONHASHSEED"] = seed
    done = subprocess.run([sys.executable, "-c", PROBE, str(data), json.dumps(ASKED)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("seed", ["0", "3"])  # Starlette's own order differs between these
def test_allow_lists_every_method_of_the_path_sorted_whatever_the_hash_seed(
        tmp_path: Path, seed: str) -> None:
    assert answers(tmp_path, seed) == {
        "POST /health": [405, "GET, HEAD", "method not allowed: POST /health; it takes GET, HEAD"],
        "PUT /metrics": [405, "GET, HEAD", "method not allowed: PUT /metrics; it takes GET, HEAD"],
        # two routes share the path (GET lists keys, POST creates one): both are named
        "DELETE /api/keys": [405, "GET, HEAD, POST",
                             "method not allowed: DELETE /api/keys; it takes GET, HEAD, POST"],
        "GET /v1/chat/completions": [
            405, "POST", "method not allowed: GET /v1/chat/completions; it takes POST"],
    }
