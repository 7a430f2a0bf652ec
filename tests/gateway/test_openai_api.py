"""The official openai SDK against a running keel: chat (plain and streamed), tools,
embeddings, models, attribution, and traces with usage and cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.keel import Keel, running_keel
from tests.support.servers import ThreadServer


@pytest.fixture(scope="module")
def fake(fake_openai: tuple[FakeOpenAI, ThreadServer]) -> tuple[FakeOpenAI, ThreadServer]:
    return fake_openai


@pytest.fixture
def upstream(fake: tuple[FakeOpenAI, ThreadServer]) -> Iterator[tuple[FakeOpenAI, str]]:
    f, server = fake
    f.mode, f.requests, f.retry_after = "ok", [], None
    yield f, server.url


def fake_config(url: str, **provider: Any) -> dict[str, Any]:
    return {
        "providers": [{"name": "up", "kind": "openai", "base_url": url + "/v1",
                       "api_key": "sk-upstream-secret", **provider},
                      {"name": "mock", "kind": "mock"}],
        "models": [
            {"name": "gpt-4o-mini", "provider": "up", "upstream": "gpt-4o-mini-up",
             "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0,
                       "cached_input_per_mtok": 0.5}},
            {"name": "text-embedding-3-small", "provider": "up", "kind": "embedding",
             "price": {"input_per_mtok": 0.02}},
            {"name": "mock", "provider": "mock"},
            {"name": "mock-embedding", "provider": "mock", "kind": "embedding"},
        ],
    }


@pytest.fixture
def keel(tmp_path: Path, upstream: tuple[FakeOpenAI, str]) -> Iterator[Keel]:
    with running_keel(tmp_path, fake_config(upstream[1])) as k:
        yield k


def client(k: Keel, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=k.base_url, api_key=key or k.admin_key, max_retries=0)


def get_trace(k: Keel, trace_id: str) -> dict[str, Any]:
    k.flush()
    r = httpx.get(f"{k.url}/api/traces/{trace_id}", headers=k.admin_headers())
    assert r.status_code == 200, r.text
    return dict(r.json())


USER = [{"role": "user", "content": "How do I reset my password?"}]


def test_mock_chat_is_deterministic_and_traced(keel: Keel) -> None:
    c = client(keel)
    raw = c.chat.completions.with_raw_response.create(model="mock", messages=USER)
    first = raw.parse()
    again = c.chat.completions.create(model="mock", messages=USER)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert "password" in (first.choices[0].message.content or "")
    assert first.usage is not None and first.usage.completion_tokens > 0
    trace = get_trace(keel, raw.headers["x-keel-trace-id"])
    assert trace["status"] == 200 and trace["model_requested"] == "mock"
    assert trace["provider"] == "mock" and trace["team"] == "admin"
    assert trace["output_tokens"] == first.usage.completion_tokens
    assert trace["response"]["choices"][0]["message"]["content"] == \
        first.choices[0].message.content


def test_upstream_receives_translated_model_params_and_credentials(
        keel: Keel, upstream: tuple[FakeOpenAI, str]) -> None:
    fake, _ = upstream
    c = client(keel)
    r = c.chat.completions.create(
        model="gpt-4o-mini", messages=USER, temperature=0.3, seed=7, stop=["\n\n"], n=1,
        max_completion_tokens=50, user="u-42", metadata={"feature": "support", "ticket": "T-1"},
        response_format={"type": "json_object"})
    assert r.choices[0].message.content == fake.text
    assert r.model == "gpt-4o-mini-up-2024"
    sent = fake.requests[-1]
    assert sent["body"]["model"] == "gpt-4o-mini-up"
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-secret"
    for k, v in {"temperature": 0.3, "seed": 7, "stop": ["\n\n"], "user": "u-42",
                 "max_completion_tokens": 50, "response_format": {"type": "json_object"}}.items():
        assert sent["body"][k] == v
    assert "metadata" not in sent["body"]  # keel's attribution is not forwarded


def test_cost_is_cache_aware_and_attribution_recorded(keel: Keel) -> None:
    c = client(keel)
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=USER, user="u-1",
        extra_headers={"X-Keel-Feature": "support", "X-Keel-Session": "s-9",
                       "X-Keel-Tags": "env=prod,region=eu"})
    t = get_trace(keel, raw.headers["x-keel-trace-id"])
    # fake usage: 11 prompt (4 cached), 7 completion (2 reasoning)
    assert (t["input_tokens"], t["cached_tokens"], t["output_tokens"], t["reasoning_tokens"]) \
        == (11, 4, 7, 2)
    assert t["cost_usd"] == pytest.approx((7 * 1.0 + 4 * 0.5 + 7 * 2.0) / 1e6)
    assert (t["feature"], t["session"], t["user"]) == ("support", "s-9", "u-1")
    assert t["tags"] == {"env": "prod", "region": "eu"}
    assert t["model_served"] == "gpt-4o-mini-up-2024"


def test_stream_passes_chunks_and_usage_when_asked(
        keel: Keel, upstream: tuple[FakeOpenAI, str]) -> None:
    fake, _ = upstream
    c = client(keel)
    stream = c.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                       stream_options={"include_usage": True})
    text, usage = [], None
    for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(text) == fake.text
    assert usage is not None and usage.prompt_tokens == 11


def test_stream_without_include_usage_hides_usage_but_trace_has_it(
        keel: Keel, upstream: tuple[FakeOpenAI, str]) -> None:
    fake, _ = upstream
    c = client(keel)
    with c.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=USER, stream=True) as resp:
        trace_id = resp.headers["x-keel-trace-id"]
        lines = [ln for ln in resp.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert not any('"usage"' in ln for ln in lines)
    # keel asked the upstream for usage on the client's behalf
    assert fake.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    t = get_trace(keel, trace_id)
    assert t["stream"] is True and t["input_tokens"] == 11 and t["output_tokens"] == 7
    assert t["ttft_ms"] is not None and t["ttft_ms"] <= t["latency_ms"]
    assert t["response"]["choices"][0]["message"]["content"] == fake.text


def test_mock_stream_reassembles_to_the_same_answer(keel: Keel) -> None:
    c = client(keel)
    plain = c.chat.completions.create(model="mock", messages=USER).choices[0].message.content
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="mock", messages=USER, stream=True) if ch.choices)
    assert streamed == plain


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def test_tool_calls_round_trip_through_mock_and_upstream(keel: Keel) -> None:
    c = client(keel)
    for model in ("mock", "gpt-4o-mini"):
        r = c.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "what is the weather in Paris"}],
            tools=[WEATHER_TOOL], tool_choice="required")
        call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert r.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    follow = c.chat.completions.create(model="mock", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}])
    assert follow.choices[0].finish_reason == "stop"
    assert follow.choices[0].message.content


def test_mock_streams_tool_calls(keel: Keel) -> None:
    c = client(keel)
    args, name = "", None
    for ch in c.chat.completions.create(model="mock", messages=USER, tools=[WEATHER_TOOL],
                                        tool_choice="required", stream=True):
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            name = name or (tc.function.name if tc.function else None)
            args += (tc.function.arguments or "") if tc.function else ""
    assert name == "get_weather" and "city" in json.loads(args)


def test_mock_honours_json_schema_n_and_max_tokens(keel: Keel) -> None:
    c = client(keel)
    schema = {"type": "object", "properties": {"answer": {"type": "string"},
                                               "score": {"type": "integer"}}}
    r = c.chat.completions.create(model="mock", messages=USER, response_format={
        "type": "json_schema", "json_schema": {"name": "r", "schema": schema}})
    assert set(json.loads(r.choices[0].message.content or "")) == {"answer", "score"}
    r = c.chat.completions.create(model="mock", messages=USER, n=3, max_tokens=5)
    assert len(r.choices) == 3
    assert all(ch.finish_reason == "length" for ch in r.choices)


def test_embeddings_via_upstream_and_mock(keel: Keel, upstream: tuple[FakeOpenAI, str]) -> None:
    c = client(keel)
    e = c.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.embedding for d in e.data] == [[0.1, 0.2, 0.3]] * 2
    assert upstream[0].requests[-1]["body"]["model"] == "text-embedding-3-small"
    m = c.embeddings.create(model="mock-embedding", input="billing question", dimensions=64)
    assert len(m.data[0].embedding) == 64
    same = c.embeddings.create(model="mock-embedding", input="billing question", dimensions=64)
    assert same.data[0].embedding == m.data[0].embedding


def test_models_list_shows_only_what_the_key_may_use(keel: Keel) -> None:
    key = keel.create_key(team="cx", models=["mock"])
    assert [m.id for m in client(keel, key).models.list()] == ["mock"]
    assert {m.id for m in client(keel).models.list()} == {
        "gpt-4o-mini", "text-embedding-3-small", "mock", "mock-embedding"}
    assert client(keel, key).models.retrieve("mock").id == "mock"
    with pytest.raises(openai.NotFoundError):
        client(keel, key).models.retrieve("gpt-4o-mini")


def test_virtual_key_attributes_team_and_feature(keel: Keel) -> None:
    key = keel.create_key(team="support-team", feature="support")
    raw = client(keel, key).chat.completions.with_raw_response.create(model="mock",
                                                                       messages=USER)
    t = get_trace(keel, raw.headers["x-keel-trace-id"])
    assert (t["team"], t["feature"]) == ("support-team", "support")
    assert t["key_id"] is not None


def test_azure_mode_uses_deployment_path_api_version_and_api_key(
        tmp_path: Path, upstream: tuple[FakeOpenAI, str]) -> None:
    fake, url = upstream
    cfg = {"providers": [{"name": "az", "kind": "openai", "base_url": url,
                          "api_key": "azure-secret", "api_version": "2024-10-21"}],
           "models": [{"name": "gpt-4o", "provider": "az", "upstream": "my-deployment"}]}
    with running_keel(tmp_path, cfg) as k:
        r = client(k).chat.completions.create(model="gpt-4o", messages=USER)
    assert r.choices[0].message.content == fake.text
    sent = fake.requests[-1]
    assert sent["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert sent["query"] == {"api-version": "2024-10-21"}
    assert sent["headers"]["api-key"] == "azure-secret"
    assert "authorization" not in sent["headers"]


def test_health_ready_and_metrics(keel: Keel) -> None:
    assert httpx.get(f"{keel.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{keel.url}/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"
    client(keel).chat.completions.create(model="mock", messages=USER)
    text = httpx.get(f"{keel.url}/metrics", headers=keel.admin_headers()).text
    assert 'keel_requests_total{endpoint="chat",feature="default",model="mock",status="200"}' \
        in text
    assert "keel_request_latency_seconds_bucket" in text
    assert 'keel_tokens_total{direction="output"' in text
