"""Real `keel serve` processes for tests: started with a config and environment, on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port


class KeelProcess:
    def __init__(self, tmp_path: Path, config_text: str, database_url: str,
                 admin_key: str, name: str = "keel", **env: str) -> None:
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(config_text)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = admin_key
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "serve", "--config", str(cfg), "--port",
             str(self.port)],
            env={**os.environ, "KEEL_DATA_DIR": str(tmp_path / f"{name}-data"),
                 "KEEL_DATABASE_URL": database_url, "KEEL_MASTER_KEY": admin_key, **env},
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keel exited: {self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"keel did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.admin_key}"}

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self._log.close()
