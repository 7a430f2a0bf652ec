"""``keel serve``: prepare the store and admin key, print where to connect, run uvicorn."""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn
from rich.console import Console

from keel.config import KeelConfig, Settings
from keel.keys.service import ensure_master_key
from keel.secrets import SecretRedactor, install_log_redaction
from keel.server.app import create_app
from keel.server.protocol import HttpLimits, protocol_class
from keel.store import Store


async def prepare(settings: Settings) -> str | None:
    """Migrate the store; returns a newly generated master key to print once, if any."""
    store = Store(settings.resolved_database_url())
    try:
        await store.upgrade()
        return await ensure_master_key(store, settings.master_key)
    finally:
        await store.aclose()


class _Server(uvicorn.Server):
    """Exits 0 after a graceful stop on SIGTERM/SIGINT (uvicorn would re-raise the signal)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def run_server(settings: Settings, config: KeelConfig, *, console: Console) -> None:
    new_key = asyncio.run(prepare(settings))
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"keel listening on [bold]{url}[/bold]  (OpenAI base URL: {url}/v1)")
    models = ", ".join(m.name for m in config.models)
    console.print(f"store: {_describe(settings)}; models: {models}")
    if new_key:
        console.print("admin key (generated now, shown once; only its hash is stored):")
        console.print(f"  [bold]{new_key}[/bold]")
    elif settings.master_key:
        console.print("admin key: the value of KEEL_MASTER_KEY")
    else:
        console.print("admin key: the one printed when this store was first started "
                      "(set KEEL_MASTER_KEY to use your own)")
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    # No configured secret in any log line, whichever logger wrote it (at debug the
    # database driver logs whole rows); the handlers uvicorn adds get the filter below.
    secrets = SecretRedactor.from_settings(settings, config)
    install_log_redaction(secrets)
    app = create_app(settings, config, migrate=False, tune_gc=True)
    # httptools with keel's head limits and timeouts (keel.server.protocol); no WebSocket
    # upgrades (keel serves none). No limit_concurrency: it counts idle connections too and
    # answers 503 past it, so clients that hold connections open would make it refuse
    # everyone; bounded heads and timeouts bound what each connection costs instead.
    uv = uvicorn.Config(
        app, host=settings.host, port=settings.port, loop="uvloop",
        http=protocol_class(HttpLimits.from_settings(settings)), ws="none",
        timeout_keep_alive=settings.keepalive_timeout_s,
        lifespan="on", access_log=False, log_level=settings.log_level,
        timeout_graceful_shutdown=30, server_header=False, date_header=False,
    )
    install_log_redaction(secrets)
    _Server(uv).run()
    problems = app.state.keel.shutdown_problems
    if problems:  # could not drain: say so, and exit non-zero for the supervisor
        for problem in problems:
            console.print(f"[red]shutdown:[/red] {problem}")
        raise SystemExit(1)


def _describe(settings: Settings) -> str:
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        return f"SQLite {url.split(':///', 1)[1]}"
    return "PostgreSQL " + url.rsplit("@", 1)[-1]
