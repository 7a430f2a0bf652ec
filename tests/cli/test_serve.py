"""`keel serve` as people run it: it says it listens only once it does, and a port it
cannot have is one clear line and a non-zero exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

ADMIN = "sk-test-admin"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KEEL_") or k.startswith("KEEL_TEST_")}
    env.update(KEEL_DATA_DIR=str(tmp_path / "data"), KEEL_MASTER_KEY=ADMIN,
               HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    return env


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keel", "serve", *args], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=120)


def test_a_taken_port_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is already in use (another "
        "keel, or another program); stop it or choose another port with --port or KEEL_PORT"]
    assert "listening" not in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_listening_is_printed_once_connections_are_accepted(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "keel", "serve", "--port", "0"],
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:  # ends if keel exits
            seen.append(line)
            if line.startswith("keel listening on "):
                break
        assert seen and seen[-1].startswith("keel listening on http://127.0.0.1:"), seen
        url = seen[-1].split()[3]
        assert not url.endswith(":0")  # the port bound, not the one asked for
        # no retry: when the line is out, the server answers
        assert httpx.get(url + "/health", timeout=10).status_code == 200
        assert any(line.startswith("store: SQLite ") for line in seen)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_serve_warns_about_a_config_with_no_models(tmp_path: Path) -> None:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text("providers:\n  - {name: a, kind: mock}\n")
    with socket.socket() as taken:  # it stops at the port, after the config is read
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = _serve(tmp_path, "--config", str(cfg), "--port", str(taken.getsockname()[1]))
    assert done.returncode == 1
    assert f"warning: {cfg}: no models are configured" in done.stderr
