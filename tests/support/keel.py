"""A real keel server (uvicorn on loopback, in a thread) for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keel.config import KeelConfig, Settings, default_config, parse_config
from keel.server.app import create_app
from keel.server.state import AppState
from tests.support.servers import ThreadServer

ADMIN_KEY = "sk-test-admin-key"


class Keel:
    def __init__(self, server: ThreadServer, state: AppState) -> None:
        self.server = server
        self.state = state
        self.url = server.url
        self.base_url = server.url + "/v1"
        self.admin_key = ADMIN_KEY

    def flush(self) -> None:
        """Wait until every trace answered so far is in the store."""
        self.server.call(self.state.writer.flush())

    def run(self, coro: Any) -> Any:
        return self.server.call(coro)

    def create_key(self, **kwargs: Any) -> str:
        from keel.keys.service import create_key

        key, _ = self.server.call(create_key(self.state.store, **kwargs))
        self.server.call(self.state.keys.refresh())
        return str(key)

    def admin_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.admin_key}"}


def keel_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "database_url": database_url or f"sqlite:///{tmp_path / 'keel.db'}",
        "master_key": ADMIN_KEY,
        "refresh_interval_s": 0.2,
        "trace_flush_interval_s": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_keel(
    tmp_path: Path, config: KeelConfig | dict[str, Any] | None = None,
    database_url: str | None = None, **settings: Any,
) -> Iterator[Keel]:
    cfg = (parse_config(config, "test.yaml") if isinstance(config, dict)
           else config or default_config())
    st = AppState.build(keel_settings(tmp_path, database_url, **settings), cfg)
    server = ThreadServer(create_app(st.settings, cfg, state=st)).start()
    try:
        yield Keel(server, st)
    finally:
        server.stop()
