"""Bad input and failing upstreams: the right status, an OpenAI-format error a person can
act on, a trace recording it, and a server that keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.test_openai_api import USER, fake_config, get_trace
from tests.support.fake_openai import FakeOpenAI
from tests.support.keel import Keel, running_keel
from tests.support.servers import free_port, serve


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeOpenAI, str]]:
    f = FakeOpenAI()
    f.hang_s = 3.0
    with serve(f.app) as server:
        yield f, server.url


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory,
         upstream: tuple[FakeOpenAI, str]) -> Iterator[Keel]:
    cfg = fake_config(upstream[1], timeout_s=0.5)
    cfg["providers"].append({"name": "down", "kind": "openai",
                             "base_url": f"http://127.0.0.1:{free_port()}/v1"})
    cfg["models"].append({"name": "unreachable", "provider": "down"})
    with running_keel(tmp_path_factory.mktemp("keel"), cfg, max_body_bytes=20_000) as k:
        yield k


@pytest.fixture(autouse=True)
def _reset(upstream: tuple[FakeOpenAI, str]) -> None:
    f = upstream[0]
    f.mode, f.status, f.retry_after = "ok", 500, None
    f.error_body = {"error": {"message": "boom", "type": "server_error"}}


def post(k: Keel, body: Any = None, *, raw: bytes | None = None, key: str | None = "admin",
         path: str = "/v1/chat/completions", headers: dict[str, str] | None = None,
         ) -> httpx.Response:
    h = {"content-type": "application/json", **(headers or {})}
    if key:
        h["authorization"] = f"Bearer {k.admin_key if key == 'admin' else key}"
    if raw is None:
        import orjson

        raw = orjson.dumps(body)
    return httpx.post(k.url + path, content=raw, headers=h, timeout=10)


def assert_error(r: httpx.Response, status: int, type_: str, words: str,
                 param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == type_
    assert words in err["message"], err["message"]
    if param is not None:
        assert err["param"] == param
    return dict(err)


def assert_traced(k: Keel, r: httpx.Response, status: int, error_type: str) -> None:
    t = get_trace(k, r.headers["x-keel-trace-id"])
    assert (t["status"], t["error_type"]) == (status, error_type)
    assert t["error_message"]


GOOD = {"model": "mock", "messages": USER}


@pytest.mark.parametrize(("raw", "words"), [
    (b"{not json", "not valid JSON"),
    (b"", "body is empty"),
    (b"[1, 2]", "must be a JSON object, not list"),
])
def test_unparseable_bodies(keel: Keel, raw: bytes, words: str) -> None:
    r = post(keel, raw=raw)
    assert_error(r, 400, "invalid_request_error", words)
    assert_traced(keel, r, 400, "invalid_request_error")


@pytest.mark.parametrize(("patch", "param", "words"), [
    ({"model": None}, "model", "'model' is required"),
    ({"model": 5}, "model", "must be a non-empty string, got integer"),
    ({"messages": "hi"}, "messages", "must be an array, got string"),
    ({"messages": []}, "messages", "at least one message"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "must be one of"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "required for a user message"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "required"),
    ({"temperature": "hot"}, "temperature", "must be a number, got string"),
    ({"temperature": 3}, "temperature", "between 0 and 2"),
    ({"max_tokens": 0}, "max_tokens", "between 1 and"),
    ({"max_tokens": True}, "max_tokens", "must be an integer, got boolean"),
    ({"n": 1.5}, "n", "must be an integer"),
    ({"stream": "yes"}, "stream", "must be a boolean"),
    ({"stop": [1]}, "stop", "a string or an array of strings"),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "must be an object"),
    ({"response_format": {"type": "xml"}}, "response_format.type", "json_schema"),
    ({"metadata": {"feature": 3}}, "metadata.feature", "must be a string"),
])
def test_wrong_types_name_the_parameter(keel: Keel, patch: dict[str, Any], param: str,
                                         words: str) -> None:
    body = {**GOOD, **patch}
    body = {k: v for k, v in body.items() if v is not None}
    r = post(keel, body)
    assert_error(r, 400, "invalid_request_error", words, param=param)


def test_unknown_model_lists_the_usable_ones(keel: Keel) -> None:
    r = post(keel, {**GOOD, "model": "gpt-9"})
    err = assert_error(r, 404, "invalid_request_error", "model 'gpt-9' does not exist")
    assert "mock" in err["message"] and err["code"] == "model_not_found"
    assert_traced(keel, r, 404, "model_not_found")


def test_embedding_model_cannot_chat(keel: Keel) -> None:
    r = post(keel, {**GOOD, "model": "mock-embedding"})
    assert_error(r, 400, "invalid_request_error", "is a embedding model")


def test_missing_and_invalid_keys(keel: Keel) -> None:
    r = post(keel, GOOD, key=None)
    assert_error(r, 401, "authentication_error", "no API key")
    assert_traced(keel, r, 401, "invalid_api_key")
    r = post(keel, GOOD, key="sk-keel-0123456789abnotarealsecret")
    assert_error(r, 401, "authentication_error", "unknown or revoked")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keel.base_url, api_key="wrong", max_retries=0) \
            .chat.completions.create(model="mock", messages=USER)  # type: ignore[arg-type]


def test_model_not_allowed_for_key(keel: Keel) -> None:
    key = keel.create_key(team="cx", models=["mock"])
    r = post(keel, {**GOOD, "model": "gpt-4o-mini"}, key=key)
    err = assert_error(r, 403, "permission_error", "may not use model 'gpt-4o-mini'")
    assert err["code"] == "model_not_allowed"
    assert_traced(keel, r, 403, "model_not_allowed")


def test_feature_bound_key_cannot_report_another_feature(keel: Keel) -> None:
    key = keel.create_key(team="cx", feature="support")
    r = post(keel, GOOD, key=key, headers={"x-keel-feature": "contracts"})
    assert_error(r, 403, "permission_error", "bound to feature 'support'")
    ok = post(keel, GOOD, key=keel.create_key(team="cx", feature="support",
                                              feature_override=True),
              headers={"x-keel-feature": "contracts"})
    assert ok.status_code == 200
    assert get_trace(keel, ok.headers["x-keel-trace-id"])["feature"] == "contracts"


def test_oversized_body_is_refused(keel: Keel) -> None:
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 30_000}]}
    r = post(keel, big)
    assert_error(r, 413, "invalid_request_error", "over the 20000-byte limit")
    assert_traced(keel, r, 413, "body_too_large")


@pytest.mark.parametrize(("status", "expected", "type_", "words"), [
    (429, 429, "rate_limit_error", "rate limiting (429): boom"),
    (500, 502, "api_error", "failed (500): boom"),
    (503, 502, "api_error", "failed (503)"),
    (400, 400, "invalid_request_error", "rejected the request (400): boom"),
    (401, 502, "api_error", "rejected keel's credentials"),
])
def test_upstream_error_statuses_are_mapped(keel: Keel, upstream: tuple[FakeOpenAI, str],
                                            status: int, expected: int, type_: str,
                                            words: str) -> None:
    fake = upstream[0]
    fake.mode, fake.status = "status", status
    fake.error_body = {"error": {"message": "boom"}}  # no type or code: keel's own are sent
    fake.retry_after = "7" if status == 429 else None
    r = post(keel, {**GOOD, "model": "gpt-4o-mini"})
    assert_error(r, expected, type_, words)
    if status == 429:
        assert r.headers["retry-after"] == "7"
    t = get_trace(keel, r.headers["x-keel-trace-id"])
    assert t["status"] == expected and t["provider"] == "up" and t["attempts"] == 1


def test_upstream_garbage_is_a_502(keel: Keel, upstream: tuple[FakeOpenAI, str]) -> None:
    upstream[0].mode = "garbage"
    r = post(keel, {**GOOD, "model": "gpt-4o-mini"})
    err = assert_error(r, 502, "api_error", "not JSON")
    assert err["code"] == "upstream_bad_response"


def test_hanging_upstream_times_out(keel: Keel, upstream: tuple[FakeOpenAI, str]) -> None:
    upstream[0].mode = "hang"
    r = post(keel, {**GOOD, "model": "gpt-4o-mini"})
    assert_error(r, 504, "api_error", "did not answer within 0.5s")
    assert_traced(keel, r, 504, "upstream_timeout")
    r = post(keel, {**GOOD, "model": "gpt-4o-mini", "stream": True})
    assert_error(r, 504, "api_error", "0.5s")


def test_unreachable_upstream_is_a_503(keel: Keel) -> None:
    r = post(keel, {**GOOD, "model": "unreachable"})
    assert_error(r, 503, "api_error", "unreachable at")
    assert_traced(keel, r, 503, "upstream_unavailable")


def test_upstream_error_before_stream_starts_is_a_plain_error(
        keel: Keel, upstream: tuple[FakeOpenAI, str]) -> None:
    upstream[0].mode, upstream[0].status = "status", 429
    upstream[0].error_body = {"error": {"message": "slow down"}}
    r = post(keel, {**GOOD, "model": "gpt-4o-mini", "stream": True})
    assert_error(r, 429, "rate_limit_error", "rate limiting")
    upstream[0].mode = "json_on_stream"
    r = post(keel, {**GOOD, "model": "gpt-4o-mini", "stream": True})
    assert_error(r, 502, "api_error", "answered a stream request with JSON")


def test_stream_broken_mid_way_ends_with_error_event_and_trace(
        keel: Keel, upstream: tuple[FakeOpenAI, str]) -> None:
    upstream[0].mode = "break_stream"
    c = openai.OpenAI(base_url=keel.base_url, api_key=keel.admin_key, max_retries=0)
    got: list[str] = []
    with pytest.raises(openai.APIError, match="error mid-stream: upstream overloaded"):
        for ch in c.chat.completions.create(model="gpt-4o-mini", messages=USER,  # type: ignore[arg-type]
                                            stream=True):
            got.append(ch.choices[0].delta.content or "")
    assert got, "chunks before the break reach the client"
    keel.flush()
    rows = httpx.get(f"{keel.url}/api/traces", params={"status": "error", "limit": 1},
                     headers=keel.admin_headers()).json()["data"]
    assert rows[0]["error_type"] == "upstream_stream_error"
    assert "stream interrupted" in rows[0]["error_message"]


def test_server_keeps_serving_after_every_failure(keel: Keel) -> None:
    for raw in (b"{", b"[]", b"null"):
        post(keel, raw=raw)
    r = post(keel, GOOD)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]


def test_unknown_route_and_method_are_openai_errors(keel: Keel) -> None:
    r = httpx.get(keel.url + "/v1/nothing-here")
    assert_error(r, 404, "not_found_error", "no such endpoint")
    r = httpx.get(keel.url + "/v1/chat/completions")
    assert_error(r, 405, "invalid_request_error", "method not allowed")


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"model": "mock-embedding"}, "input", "'input' is required"),
    ({"model": "mock-embedding", "input": [1.5]}, "input", "token arrays"),
    ({"model": "mock-embedding", "input": "x", "encoding_format": "hex"},
     "encoding_format", "float or base64"),
    ({"model": "mock", "input": "x"}, "model", "cannot serve embeddings"),
])
def test_embedding_bad_input(keel: Keel, body: dict[str, Any], param: str, words: str) -> None:
    r = post(keel, body, path="/v1/embeddings")
    assert_error(r, 400, "invalid_request_error", words, param=param)


def test_admin_api_needs_a_role_and_validates(tmp_path: Path, keel: Keel) -> None:
    key = keel.create_key(team="cx")
    r = httpx.get(keel.url + "/api/traces", headers={"authorization": f"Bearer {key}"})
    assert_error(r, 403, "permission_error", "needs the 'viewer' role")
    r = httpx.get(keel.url + "/api/traces", params={"limit": "0"}, headers=keel.admin_headers())
    assert_error(r, 400, "invalid_request_error", "'limit' must be", param="limit")
    r = httpx.get(keel.url + "/api/traces", params={"since": "yesterday"},
                  headers=keel.admin_headers())
    assert_error(r, 400, "invalid_request_error", "is not a time", param="since")
    r = httpx.post(keel.url + "/api/keys", json={"models": ["mock"]},
                   headers=keel.admin_headers())
    assert_error(r, 400, "invalid_request_error", "'team' is required", param="team")
    r = httpx.post(keel.url + "/api/keys", json={"team": "x", "models": ["nope"]},
                   headers=keel.admin_headers())
    assert_error(r, 400, "invalid_request_error", "unknown model(s) nope", param="models")
    r = httpx.delete(keel.url + "/api/keys/doesnotexist", headers=keel.admin_headers())
    assert_error(r, 404, "not_found_error", "no active key")
    r = httpx.get(keel.url + "/api/traces/doesnotexist", headers=keel.admin_headers())
    assert_error(r, 404, "not_found_error", "no trace")


def test_admin_key_lifecycle_over_http(keel: Keel) -> None:
    r = httpx.post(keel.url + "/api/keys", json={"team": "ops", "feature": "search",
                                                 "models": ["mock"], "name": "ci"},
                   headers=keel.admin_headers())
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith("sk-keel-") and created["team"] == "ops"
    assert post(keel, GOOD, key=created["key"]).status_code == 200
    listed = httpx.get(keel.url + "/api/keys", headers=keel.admin_headers()).json()["data"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in mine and "secret_hash" not in mine
    r = httpx.delete(f"{keel.url}/api/keys/{created['id']}", headers=keel.admin_headers())
    assert r.json() == {"id": created["id"], "revoked": True}
    assert post(keel, GOOD, key=created["key"]).status_code == 401
