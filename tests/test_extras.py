"""keel without its extras: the base install serves the embedded default (SQLite, in-process
limits and cache), and a setting or endpoint that needs a package it lacks is refused with
one line naming the extra to install (keel.config.extras).

The subprocess tests run keel with the extras' packages made unimportable (a finder first on
``sys.meta_path``), as on ``pip install keel`` without extras."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from keel.config import Settings, default_config
from keel.config.extras import OTEL, POSTGRES, REDIS, import_extra, missing_extras
from keel.errors import ExtraNotInstalled
from keel.limits import connect_redis
from keel.server.state import AppState
from keel.store import Store
from tests.support.keel import keel_settings
from tests.support.servers import free_port

ADMIN = "sk-test-admin"
# What the extras install, and what those packages bring (protobuf comes with
# opentelemetry-proto, hiredis with redis[hiredis]).
BLOCKED = ("redis", "hiredis", "asyncpg", "opentelemetry", "google.protobuf", "numpy")
NO_EXTRAS = f"""
import sys

BLOCKED = {BLOCKED!r}


def blocked(name):
    return any(name == b or name.startswith(b + ".") for b in BLOCKED)


already = sorted(m for m in sys.modules if blocked(m))
if already:
    sys.exit(f"imported before the finder was installed: {{already}}")


class NoExtras:
    def find_spec(self, name, path=None, target=None):
        if blocked(name):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NoExtras())
"""
KEEL = NO_EXTRAS + "from keel.cli.main import main\nmain(prog_name='keel')\n"

REDIS_LINE = ("error: KEEL_REDIS_URL is set but the redis package is not installed: "
              "pip install 'keel[redis]'")
POSTGRES_LINE = ("error: KEEL_DATABASE_URL is a PostgreSQL URL but the asyncpg package is not "
                 "installed: pip install 'keel[postgres]'")
OTEL_LINE = ("error: KEEL_OTLP_ENDPOINT is set but the opentelemetry-proto package is not "
             "installed: pip install 'keel[otel]'")
INGEST_MESSAGE = ("an OTLP ingest request (POST /v1/traces) arrived but the opentelemetry-proto "
                  "package is not installed: pip install 'keel[otel]'")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KEEL_") or k.startswith("KEEL_TEST_")}
    env.update(KEEL_DATA_DIR=str(tmp_path / "data"), KEEL_MASTER_KEY=ADMIN,
               HOME=str(tmp_path), PYTHONUNBUFFERED="1", **extra)
    return env


def _keel(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", KEEL, *args], cwd=tmp_path,
                          env=_env(tmp_path, **env), capture_output=True, text=True,
                          timeout=120)


def test_the_finder_makes_every_extra_unimportable(tmp_path: Path) -> None:
    probe = NO_EXTRAS + (
        "import importlib\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        print('blocked', name)\n"
        "import orjson, sqlalchemy, uvloop, httptools\n"  # the core is untouched
        "print('core ok')\n")
    names = ["redis.asyncio", "hiredis", "asyncpg", "opentelemetry.proto.trace.v1.trace_pb2",
             "google.protobuf.message", "numpy"]
    done = subprocess.run([sys.executable, "-c", probe, *names], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"blocked {n}" for n in names] + ["core ok"]


@pytest.mark.slow
def test_keel_serve_without_extras_serves_records_and_refuses_otlp_ingest(
        tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "keel.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", KEEL, "serve", "--port", str(port)], cwd=tmp_path,
            env=_env(tmp_path, KEEL_TRACE_FLUSH_INTERVAL_S="0.05"), stdout=log,
            stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                try:
                    if httpx.get(url + "/health", timeout=0.5).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            client = openai.OpenAI(base_url=url + "/v1", api_key=ADMIN, max_retries=0)
            first = client.chat.completions.with_raw_response.create(
                model="mock", messages=[{"role": "user", "content": "hello"}])
            assert first.parse().choices[0].message.content

            auth = {"authorization": f"Bearer {ADMIN}"}
            for body, ctype in ((b'{"resourceSpans": []}', "application/json"),
                                (b"", "application/x-protobuf")):
                got = httpx.post(url + "/v1/traces", content=body,
                                 headers={**auth, "content-type": ctype}, timeout=10)
                assert got.status_code == 501
                assert got.json() == {"error": {
                    "message": INGEST_MESSAGE, "type": "not_implemented", "param": None,
                    "code": "extra_not_installed"}}

            # still serving after the refused ingest
            second = client.chat.completions.with_raw_response.create(
                model="mock", messages=[{"role": "user", "content": "again"}])
            ids = {first.headers["x-keel-trace-id"], second.headers["x-keel-trace-id"]}
            stored: set[str] = set()
            deadline = time.monotonic() + 20
            while not ids <= stored and time.monotonic() < deadline:
                time.sleep(0.1)
                listed = httpx.get(url + "/api/traces", headers=auth, timeout=10)
                assert listed.status_code == 200
                stored = {t["id"] for t in listed.json()["data"]}
            assert ids <= stored
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    output = log_path.read_text()
    assert code == 0, output
    assert "Traceback" not in output


REFUSALS = [
    pytest.param({"KEEL_REDIS_URL": "redis://127.0.0.1:6379/0"}, REDIS_LINE, id="redis"),
    pytest.param({"KEEL_DATABASE_URL": "postgresql://keel@127.0.0.1:5432/keel"},
                 POSTGRES_LINE, id="postgres"),
    pytest.param({"KEEL_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, OTEL_LINE, id="otel"),
]


@pytest.mark.parametrize(("env", "line"), REFUSALS)
def test_keel_serve_refuses_a_setting_whose_extra_is_missing_in_one_line(
        tmp_path: Path, env: dict[str, str], line: str) -> None:
    done = _keel(tmp_path, "serve", "--port", "0", **env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [line]
    assert "listening" not in done.stdout
    assert not (tmp_path / "data" / "keel.db").exists()  # refused before opening anything


def test_keel_config_check_lists_every_missing_extra(tmp_path: Path) -> None:
    """All at once, in one line each (the order of keel.config.extras)."""
    done = _keel(tmp_path, "config", "check", KEEL_REDIS_URL="redis://127.0.0.1:6379/0",
                 KEEL_DATABASE_URL="postgresql://keel@127.0.0.1:5432/keel",
                 KEEL_OTLP_ENDPOINT="http://127.0.0.1:4318")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [POSTGRES_LINE, REDIS_LINE, OTEL_LINE]
    assert "config is valid" not in done.stdout


# --- in process: a package made unimportable through sys.modules -----------------------------


def test_import_extra_names_the_extra_and_answers_501(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ExtraNotInstalled) as caught:
        import_extra(REDIS, "KEEL_REDIS_URL is set")
    err = caught.value
    assert err.message == REDIS_LINE.removeprefix("error: ")
    assert (err.status, err.to_openai()["error"]["code"]) == (501, "extra_not_installed")


def test_a_missing_dependency_of_the_extra_is_named() -> None:
    cause = ModuleNotFoundError("No module named 'google'", name="google")
    err = OTEL.missing("KEEL_OTLP_ENDPOINT is set", cause)
    assert err.message == (
        "KEEL_OTLP_ENDPOINT is set but the opentelemetry-proto package is not installed "
        "(No module named 'google'): pip install 'keel[otel]'")


def test_missing_extras_is_empty_when_the_settings_ask_for_none(tmp_path: Path) -> None:
    assert missing_extras(Settings(data_dir=str(tmp_path))) == []


def test_app_state_refuses_a_redis_url_without_redis_before_opening_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    settings = keel_settings(tmp_path, redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(ExtraNotInstalled, match=r"pip install 'keel\[redis\]'"):
        AppState.build(settings, default_config())
    assert not (tmp_path / "keel.db").exists()


def test_connect_redis_without_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ExtraNotInstalled, match=r"pip install 'keel\[redis\]'"):
        connect_redis("redis://127.0.0.1:6379/0")


def test_a_postgres_store_without_asyncpg_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, POSTGRES.module, None)
    with pytest.raises(ExtraNotInstalled) as caught:
        Store("postgresql://keel@127.0.0.1:5432/keel")
    assert caught.value.message == POSTGRES_LINE.removeprefix("error: ")
