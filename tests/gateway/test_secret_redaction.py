"""Configured secrets never leave keel: an upstream that echoes the credentials keel sent
(in error bodies, in stream error events, in response headers, truncated or whole) gets
none of them to the client, the store, the trace API or the logs (DEBUG included)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import sqlalchemy as sa
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from keel.gateway.providers.http import retry_after, upstream_message
from keel.secrets import SecretRedactor
from keel.store import Store
from keel.store.schema import metadata
from tests.support.keel import ADMIN_KEY, Keel, running_keel
from tests.support.process import KeelProcess
from tests.support.servers import ThreadServer, serve

OPENAI_KEY = "sk-proj-Zq7TfW2vLk9XpR4mB8nHcY3jD6sQ1aUe"
ANTHROPIC_KEY = "sk-ant-api03-Hb5Nw8Kd2Lq9Rt4Yx7Vm3Pc6Fj1Gs0Az"
GEMINI_KEY = "AIzaSyC4mQ9wX2rT7vB5nL8kJ3hF6dG1sP0eZ"
ORG_TOKEN = "org-Vq2Wd7Yh4Kp9Lm3Nx8Tb"  # header x-org-token: secret by its name
TENANT = "tnt-Rb8Mz3Qt6Wv1Xk5Jn9Hc"  # header x-tenant: secret because the config says so
SECRETS = (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, ORG_TOKEN, TENANT, ADMIN_KEY)
# What the upstream echoes when it shortens a key (its first 24 and last 10 characters),
# less the public type prefixes (sk-proj-, sk-ant-api03-): the secret part of each.
FRAGMENTS = (OPENAI_KEY[8:24], OPENAI_KEY[-10:], ANTHROPIC_KEY[13:24], ANTHROPIC_KEY[-10:],
             GEMINI_KEY[:24], GEMINI_KEY[-10:])

# the credential headers each protocol sends, and the custom ones of the openai provider
CREDENTIAL_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key",
                      "x-org-token", "x-tenant")
BEHAVIOURS = ("reject", "truncated", "ratelimit", "stream_error")


def _leaks(text: str) -> list[str]:
    return [s for s in (*SECRETS, *FRAGMENTS) if s in text]


class EchoUpstream:
    """Speaks the OpenAI, Anthropic and Gemini wire formats; the upstream model name picks
    the behaviour: ``reject`` (401 echoing every credential header received), ``truncated``
    (401 echoing the key shortened to its head and tail), ``ratelimit`` (429 with the key
    in ``retry-after`` and in other headers), ``stream_error`` (a first good chunk, then an
    error event echoing the credentials), anything else: a normal answer."""

    def __init__(self) -> None:
        self.app = Starlette(routes=[
            Route("/openai/v1/chat/completions", self.openai, methods=["POST"]),
            Route("/anthropic/v1/messages", self.anthropic, methods=["POST"]),
            Route("/gemini/v1beta/{resource:path}", self.gemini, methods=["POST"]),
        ])

    @staticmethod
    def _echo(request: Request) -> str:
        return "; ".join(f"{h}: {request.headers[h]}" for h in CREDENTIAL_HEADERS
                         if h in request.headers)

    @staticmethod
    def _key(request: Request) -> str:
        for h in ("x-api-key", "x-goog-api-key", "api-key"):
            if h in request.headers:
                return request.headers[h]
        return request.headers["authorization"].removeprefix("Bearer ")

    def _failure(self, request: Request, behaviour: str, shape: str) -> Response | None:
        key = self._key(request)
        echo = self._echo(request)
        headers = {"x-echo-credential": echo.replace("; ", ",")}
        if behaviour == "reject":
            status, message = 401, f"Incorrect API key provided: {echo}"
        elif behaviour == "truncated":
            status, message = 401, f"Incorrect API key provided: {key[:24]}****{key[-10:]}"
        elif behaviour == "ratelimit":
            status, message = 429, f"Rate limit reached for key {key}"
            headers["retry-after"] = key
        else:
            return None
        if shape == "gemini" and status == 401:  # Gemini answers a bad key with a 400
            status, message = 400, f"API key not valid ({message})"
        body: dict[str, Any] = {"error": {"message": message, "type": "invalid_request_error",
                                          "code": "invalid_api_key"}}
        if shape == "anthropic":
            body = {"type": "error", "error": {"type": "authentication_error",
                                               "message": message}}
        return Response(orjson.dumps(body), status, headers=headers,
                        media_type="application/json")

    async def openai(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        failed = self._failure(request, body["model"], "openai")
        if failed is not None:
            return failed
        echo = self._echo(request)

        async def chunks() -> AsyncIterator[bytes]:
            yield b"data: " + orjson.dumps({
                "id": "c1", "object": "chat.completion.chunk", "created": 1,
                "model": body["model"], "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                     "finish_reason": None}]}) + b"\n\n"
            await asyncio.sleep(0)
            yield b"data: " + orjson.dumps(
                {"error": {"message": f"stream aborted, credentials were {echo}",
                           "type": "server_error"}}) + b"\n\n"

        if body.get("stream"):
            return StreamingResponse(chunks(), media_type="text/event-stream",
                                     headers={"x-echo-credential": echo})
        return Response(orjson.dumps({
            "id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
            media_type="application/json")

    async def anthropic(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        failed = self._failure(request, body["model"], "anthropic")
        if failed is not None:
            return failed
        echo = self._echo(request)

        def sse(event: str, data: dict[str, Any]) -> bytes:
            return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            yield sse("message_start", {"type": "message_start", "message": {
                "id": "m1", "type": "message", "role": "assistant", "model": body["model"],
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 1}}})
            yield sse("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}})
            yield sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": "Hi"}})
            yield sse("error", {"type": "error", "error": {
                "type": "authentication_error", "message": f"invalid credentials: {echo}"}})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def gemini(self, request: Request) -> Response:
        model = request.path_params["resource"].rpartition(":")[0].removeprefix("models/")
        failed = self._failure(request, model, "gemini")
        if failed is not None:
            return failed
        echo = self._echo(request)

        async def events() -> AsyncIterator[bytes]:
            yield b"data: " + orjson.dumps({"candidates": [{"index": 0, "content": {
                "role": "model", "parts": [{"text": "Hi"}]}}],
                "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}) + b"\r\n\r\n"
            yield b"data: " + orjson.dumps({"error": {
                "code": 401, "message": f"credentials refused: {echo}",
                "status": "UNAUTHENTICATED"}}) + b"\r\n\r\n"

        return StreamingResponse(events(), media_type="text/event-stream")


def test_upstream_messages_are_redacted_before_they_are_cut() -> None:
    """A key straddling the 300-character cut leaves no piece of itself behind."""
    raw = orjson.dumps({"error": {"message": "x" * 285 + OPENAI_KEY + " more"}})
    assert upstream_message(raw, SecretRedactor([OPENAI_KEY]).redact) == \
        "x" * 285 + "[REDACTED] more"


@pytest.mark.parametrize(("value", "kept"), [
    ("120", "120"), ("1.5", "1.5"), ("Wed, 21 Oct 2015 07:28:00 GMT", True),
    (OPENAI_KEY, None), ("\u00b2", None), ("", None), ("9" * 30, None)])
def test_only_a_real_retry_after_is_passed_on(value: str, kept: str | bool | None) -> None:
    assert retry_after(value) == (value if kept is True else kept)


def echo_config(url: str) -> dict[str, Any]:
    providers = [
        {"name": "oa", "kind": "openai", "base_url": f"{url}/openai/v1", "api_key": OPENAI_KEY,
         "headers": {"x-org-token": ORG_TOKEN, "x-tenant": TENANT},
         "secret_headers": ["x-tenant"]},
        {"name": "an", "kind": "anthropic", "base_url": f"{url}/anthropic",
         "api_key": ANTHROPIC_KEY},
        {"name": "ge", "kind": "gemini", "base_url": f"{url}/gemini/v1beta",
         "api_key": GEMINI_KEY},
        {"name": "mock", "kind": "mock"},
    ]
    models: list[dict[str, Any]] = [
        {"name": f"{p}-{b}", "provider": p, "upstream": b, "price": {}}
        for p in ("oa", "an", "ge") for b in BEHAVIOURS]
    models.append({"name": "mock", "provider": "mock"})
    features = [{"name": "hush", "capture": "none"}, {"name": "masked", "capture": "redacted"}]
    return {"providers": providers, "models": models, "features": features}


@pytest.fixture(scope="module")
def echo() -> Iterator[ThreadServer]:
    with serve(EchoUpstream().app) as server:
        yield server


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory, echo: ThreadServer) -> Iterator[Keel]:
    with running_keel(tmp_path_factory.mktemp("keel"), echo_config(echo.url)) as k:
        yield k


def _auth(k: Keel) -> dict[str, str]:
    return {"authorization": f"Bearer {k.admin_key}"}


def _chat(k: Keel, model: str, *, stream: bool, anthropic: bool = False) -> httpx.Response:
    path = "/v1/messages" if anthropic else "/v1/chat/completions"
    body: dict[str, Any] = {"model": model, "stream": stream,
                            "messages": [{"role": "user", "content": "Hello"}]}
    if anthropic:
        body["max_tokens"] = 32
    return httpx.post(k.url + path, json=body, headers=_auth(k), timeout=10)


def _everything(r: httpx.Response) -> str:
    return r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items())


def _cases() -> list[tuple[str, bool]]:
    out = []
    for p in ("oa", "an", "ge"):
        out += [(f"{p}-reject", False), (f"{p}-reject", True), (f"{p}-truncated", False),
                (f"{p}-ratelimit", False), (f"{p}-stream_error", True)]
    return out


@pytest.mark.parametrize("inbound", ["openai", "anthropic"])
@pytest.mark.parametrize(("model", "stream"), _cases())
def test_echoed_credentials_reach_no_client(keel: Keel, model: str, stream: bool,
                                            inbound: str) -> None:
    r = _chat(keel, model, stream=stream, anthropic=inbound == "anthropic")
    seen = _everything(r)
    assert _leaks(seen) == [], seen
    assert "[REDACTED]" in seen, seen  # the message is still there, minus the secret
    if model.endswith("stream_error"):
        assert r.status_code == 200 and "error" in r.text  # reported mid-stream
    else:
        assert r.status_code in (401, 429, 502), r.text
    if model.endswith("ratelimit"):
        assert "retry-after" not in r.headers  # not a delay: never passed on


def test_openai_sdk_sees_no_credentials_plain_or_streamed(keel: Keel) -> None:
    c = openai.OpenAI(base_url=keel.base_url, api_key=keel.admin_key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as failed:
        c.chat.completions.create(model="oa-reject", messages=[{"role": "user", "content": "x"}])
    assert _leaks(str(failed.value) + str(failed.value.body)) == []
    assert "credentials" in str(failed.value)
    with pytest.raises(openai.APIError) as broken:
        for _ in c.chat.completions.create(model="oa-stream_error", stream=True,
                                           messages=[{"role": "user", "content": "x"}]):
            pass
    assert _leaks(str(broken.value) + str(broken.value.body)) == []
    assert "[REDACTED]" in str(broken.value)


def test_traces_keep_the_error_but_not_the_secret(keel: Keel) -> None:
    ids = []
    for model, stream in _cases():
        ids.append(_chat(keel, model, stream=stream).headers["x-keel-trace-id"])
    # a client that pastes a configured secret into its prompt: stored redacted too
    pasted = httpx.post(keel.url + "/v1/chat/completions", headers=_auth(keel), json={
        "model": "mock", "messages": [{"role": "user", "content": f"my key is {OPENAI_KEY}"}],
        "metadata": {"note": ADMIN_KEY}})
    assert pasted.status_code == 200
    ids.append(pasted.headers["x-keel-trace-id"])
    keel.flush()
    listed = httpx.get(keel.url + "/api/traces", params={"limit": 200}, headers=_auth(keel))
    assert listed.status_code == 200
    assert _leaks(listed.text) == []
    for trace_id in ids:
        one = httpx.get(f"{keel.url}/api/traces/{trace_id}", headers=_auth(keel))
        assert one.status_code == 200
        assert _leaks(one.text) == [], one.text
        t = one.json()
        if t["status"] != 200 or t["error_type"]:
            assert "[REDACTED]" in t["error_message"], t
    stored = httpx.get(f"{keel.url}/api/traces/{ids[-1]}", headers=_auth(keel)).json()
    assert "[REDACTED]" in orjson.dumps(stored["request"]).decode()
    assert stored["tags"] == {"note": "[REDACTED]"}
    db = Path(keel.state.settings.resolved_database_url().split(":///", 1)[1])
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert [s for s in (*SECRETS, *FRAGMENTS) if s.encode() in raw] == []


def test_postgresql_rows_hold_no_secret(tmp_path: Path, postgres_url: str,
                                        echo: ThreadServer) -> None:
    from tests.conftest import _reset_postgres

    asyncio.run(_reset_postgres(postgres_url))
    with running_keel(tmp_path, echo_config(echo.url), database_url=postgres_url) as k:
        for model, stream in _cases():
            assert _chat(k, model, stream=stream).status_code in (200, 401, 429, 502)
        k.flush()
    rows = asyncio.run(_all_rows(postgres_url))
    assert "[REDACTED]" in rows
    assert _leaks(rows) == []


async def _all_rows(url: str) -> str:
    store = Store(url)
    try:
        async with store.connect() as conn:
            parts = []
            for table in metadata.sorted_tables:
                result = await conn.execute(sa.text(f'SELECT t::text FROM "{table.name}" t'))
                parts += [str(r[0]) for r in result]
            return "\n".join(parts)
    finally:
        await store.aclose()


def test_debug_log_holds_no_secret_and_follows_capture(tmp_path: Path,
                                                        echo: ThreadServer) -> None:
    """``keel serve`` at DEBUG: the database driver logs every row written, but no
    configured secret, and content only as the feature's capture policy stores it."""
    proc = KeelProcess(tmp_path, yaml.safe_dump(echo_config(echo.url)),
                       f"sqlite:///{tmp_path / 'keel.db'}", ADMIN_KEY, KEEL_LOG_LEVEL="debug")
    try:
        for model, stream in _cases():
            httpx.post(proc.url + "/v1/chat/completions", headers=proc.headers, timeout=10,
                       json={"model": model, "stream": stream,
                             "messages": [{"role": "user", "content": "Hello"}]})
        for feature, text in (("hush", "HUSH-7f3a prompt"), ("masked", "mail jane.doe@example.com"),
                              ("default", "FULL-9c2e prompt")):
            r = httpx.post(proc.url + "/v1/chat/completions", timeout=10,
                           headers={**proc.headers, "x-keel-feature": feature},
                           json={"model": "mock", "messages": [{"role": "user", "content": text}]})
            assert r.status_code == 200, r.text
    finally:
        assert proc.stop() == 0
    log = proc.log()
    assert "DEBUG aiosqlite" in log and "INSERT INTO trace_payloads" in log  # really DEBUG
    assert "[REDACTED]" in log
    assert _leaks(log) == []
    assert "FULL-9c2e" in log  # capture full: the prompt is stored, and so logged
    assert "HUSH-7f3a" not in log  # capture none: neither stored nor logged
    assert "jane.doe@example.com" not in log and "[EMAIL]" in log  # capture redacted
