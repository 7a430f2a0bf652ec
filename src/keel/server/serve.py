"""``keel serve``: bind the port, prepare the store and admin key, run uvicorn, and say where
to connect once it accepts connections."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sys
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
    """Says "keel listening" once the app has started and the socket accepts connections;
    exits 0 after a graceful stop on SIGTERM/SIGINT (uvicorn would re-raise the signal)."""

    def __init__(self, config: uvicorn.Config, console: Console, url: str) -> None:
        super().__init__(config)
        self._console, self._url = console, url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._console.print(f"keel listening on [bold]{self._url}[/bold]  "
                                f"(OpenAI base URL: {self._url}/v1)")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; a port that cannot be had exits 1 with one line saying why."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            why = ("the port is already in use (another keel, or another program); stop it "
                   "or choose another port with --port or KEEL_PORT")
        elif exc.errno == errno.EACCES:
            why = "permission denied; ports below 1024 need privileges, use --port 4000"
        else:
            why = f"{exc.strerror or exc}; check --host / KEEL_HOST"
        sys.stderr.write(f"error: cannot listen on {where}: {why}\n")
        raise SystemExit(1) from None
    sock.set_inheritable(True)
    return sock


def run_server(settings: Settings, config: KeelConfig, *, console: Console,
               config_source: str | None = None, store_source: str | None = None,
               admin_key_note: str | None = None) -> None:
    """Serve until stopped. ``config_source`` and ``store_source`` say which config file and
    store are used and why (keel.locations); ``admin_key_note``, when given, is what is said
    of the admin key instead (``keel demo`` keeps its own and has printed it)."""
    sock = bind(settings.host, settings.port)  # before anything else: a taken port is fatal
    try:
        new_key = asyncio.run(prepare(settings))
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{port}"
    models = ", ".join(m.name for m in config.models) or "none"
    console.print(f"store: {settings.describe_store()}"
                  + (f" ({store_source})" if store_source else ""), markup=False)
    if config_source is not None:
        console.print(f"config: {config_source}", markup=False)
    console.print(f"models: {models}", markup=False)
    if admin_key_note is not None:
        console.print(admin_key_note, markup=False)
    elif new_key:
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
    try:
        _Server(uv, console, url).run(sockets=[sock])
    finally:
        sock.close()
    problems = app.state.keel.shutdown_problems
    if problems:  # could not drain: say so, and exit non-zero for the supervisor
        for problem in problems:
            console.print(f"[red]shutdown:[/red] {problem}")
        raise SystemExit(1)

