"""OpenTelemetry out and in: stored traces leave as OTLP spans (GenAI conventions) to a real
receiver on loopback; OTLP spans sent to keel's /v1/traces become priced traces."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from keel.config import Settings, default_config
from keel.errors import ConfigError
from keel.store import Store
from keel.store.schema import rollups
from keel.store.traces import TraceFilter, count_traces
from keel.telemetry.metrics import Metrics
from keel.telemetry.otel_export import OtlpExporter, otel_ids, parse_headers, traces_url
from keel.telemetry.writer import TraceWriter
from keel.types import Trace, Usage
from tests.support.keel import Keel, running_keel
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.servers import ThreadServer, free_port, serve

PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cached_input_per_mtok": 0.3}
CONFIG: dict[str, Any] = {
    "providers": [{"name": "mock", "kind": "mock"},
                  {"name": "down", "kind": "mock", "errors": {"server_error": 1.0}}],
    "models": [
        {"name": "mock", "provider": "mock", "price": PRICE},
        {"name": "mock-embedding", "provider": "mock", "kind": "embedding",
         "price": {"input_per_mtok": 0.02}},
        {"name": "broken", "provider": "down", "price": PRICE},
        # what OTLP spans from other apps name: priced by keel name or by upstream name
        {"name": "sonnet", "provider": "mock", "upstream": "claude-sonnet-x", "price": PRICE},
    ],
}
USER = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I reset my password?"}]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[OtlpReceiver, ThreadServer]]:
    r = OtlpReceiver()
    with serve(r.app) as server:
        yield r, server


@pytest.fixture
def otlp(receiver: tuple[OtlpReceiver, ThreadServer]) -> tuple[OtlpReceiver, str]:
    r, server = receiver
    r.requests.clear()
    r.headers.clear()
    r.status = 200
    return r, server.url


def client(k: Keel, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=k.base_url, api_key=key or k.admin_key, max_retries=0)


def stored(k: Keel, trace_id: str) -> dict[str, Any]:
    k.flush()
    r = httpx.get(f"{k.url}/api/traces/{trace_id}", headers=k.admin_headers())
    assert r.status_code == 200, r.text
    return dict(r.json())


def metric(k: Keel, sample: str) -> float:
    """A sample's value from keel's /metrics, e.g. 'x_total{reason="y"}' (0 when absent)."""
    for line in httpx.get(f"{k.url}/metrics", headers=k.admin_headers()).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- export ----------------------------------------------------------------------------------


def test_every_trace_is_exported_with_genai_attributes(
    tmp_path: Path, otlp: tuple[OtlpReceiver, str],
) -> None:
    receiver, url = otlp
    with running_keel(tmp_path, CONFIG, otlp_endpoint=url,
                      otlp_headers="authorization=Bearer%20collector-token,x-tenant=ml") as k:
        c = client(k)
        raw = c.chat.completions.with_raw_response.create(
            model="mock", messages=USER, temperature=0.2, max_tokens=64,
            extra_headers={"x-keel-feature": "support"})
        chat_id = raw.headers["x-keel-trace-id"]
        emb = c.embeddings.with_raw_response.create(model="mock-embedding", input="hello")
        emb_id = emb.headers["x-keel-trace-id"]
        with pytest.raises(openai.APIStatusError):
            c.chat.completions.create(model="broken", messages=USER)
        k.flush()
        spans = wait_for(lambda: len(receiver.spans()) >= 3 and receiver.by_keel_id(),
                         "three exported spans")
        chat_trace, emb_trace = stored(k, chat_id), stored(k, emb_id)
        errors = [s for s in spans.values() if s.attrs.get("error.type")]
        assert len(errors) == 1
        err_trace = stored(k, errors[0].attrs["keel.trace_id"])

    assert receiver.headers[0]["authorization"] == "Bearer collector-token"
    assert receiver.headers[0]["x-tenant"] == "ml"
    span = spans[chat_id]
    a = span.attrs
    assert span.span.name == "chat mock"
    assert span.span.kind == Span.SPAN_KIND_CLIENT
    assert span.span.trace_id.hex() == chat_id  # the OTel trace id is keel's trace id
    assert len(span.span.span_id) == 8
    assert span.span.start_time_unix_nano == int(chat_trace["start_time"] * 1e9)
    assert span.span.end_time_unix_nano >= span.span.start_time_unix_nano
    assert span.span.status.code == Status.STATUS_CODE_UNSET
    assert span.resource["service.name"] == "keel" and span.resource["service.version"]
    assert span.scope == "keel"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "keel.mock" and a["keel.provider"] == "mock"
    assert a["gen_ai.request.model"] == chat_trace["model_requested"] == "mock"
    assert a["gen_ai.response.model"] == chat_trace["model_served"]
    assert a["gen_ai.usage.input_tokens"] == chat_trace["input_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == chat_trace["output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["keel.cost_usd"] == pytest.approx(chat_trace["cost_usd"]) and a["keel.cost_usd"] > 0
    assert a["keel.feature"] == chat_trace["feature"] == "support"
    assert a["keel.team"] == "admin"
    assert a["keel.trace_id"] == chat_id
    assert a["keel.cache_hit"] is False
    assert "error.type" not in a
    # content stays home unless KEEL_OTLP_CAPTURE_CONTENT is on
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output")) for k in a)

    e = spans[emb_id]
    assert e.span.name == "embeddings mock-embedding"
    assert e.attrs["gen_ai.operation.name"] == "embeddings"
    assert e.attrs["gen_ai.usage.input_tokens"] == emb_trace["input_tokens"] > 0
    assert e.attrs["keel.cost_usd"] == pytest.approx(emb_trace["cost_usd"])

    err = errors[0]
    assert err.span.status.code == Status.STATUS_CODE_ERROR
    assert err.attrs["error.type"] == err_trace["error_type"]
    assert err.attrs["http.response.status_code"] == err_trace["status"] >= 500
    assert err.span.status.message == err_trace["error_message"]
    assert err.attrs["gen_ai.request.model"] == "broken"


def test_content_is_exported_only_when_capture_is_on(
    tmp_path: Path, otlp: tuple[OtlpReceiver, str],
) -> None:
    receiver, url = otlp
    with running_keel(tmp_path, CONFIG, otlp_endpoint=url, otlp_capture_content=True) as k:
        raw = client(k).chat.completions.with_raw_response.create(model="mock", messages=USER)
        answer = raw.parse().choices[0].message.content
        k.flush()
        spans = wait_for(receiver.by_keel_id, "an exported span")
    a = spans[raw.headers["x-keel-trace-id"]].attrs
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "How do I reset my password?"}]},
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": answer}],
         "finish_reason": "stop"}]


def test_endpoint_down_never_blocks_the_gateway_and_counts_drops(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with running_keel(tmp_path, CONFIG, otlp_endpoint=dead) as k:
        assert k.state.otlp is not None
        k.state.otlp.interval_s, k.state.otlp.backoff_s = 0.05, 0.01
        c = client(k)
        for _ in range(5):
            assert c.chat.completions.create(model="mock", messages=USER).choices
        k.flush()
        assert k.run(count_traces(k.state.store)) == 5
        wait_for(lambda: metric(k, 'keel_otlp_dropped_spans_total{reason="export_failed"}') >= 5,
                 "dropped spans counted")
        assert c.chat.completions.create(model="mock", messages=USER).choices
        assert metric(k, "keel_otlp_exported_spans_total") == 0


def test_export_queue_is_bounded_and_skips_ingested_traces() -> None:
    settings = Settings(otlp_endpoint="http://127.0.0.1:9")
    metrics = Metrics()
    ex = OtlpExporter(settings, default_config(), metrics, max_queue=5)
    ex.submit([Trace(id=f"{i:032x}", start_time=1.0, endpoint="chat") for i in range(1, 9)])
    assert ex.pending == 5
    assert metrics.registry.get_sample_value(
        "keel_otlp_dropped_spans_total", {"reason": "queue_full"}) == 3
    ingested = Trace(id="f" * 32, start_time=1.0, endpoint="chat", source="otlp")
    ex2 = OtlpExporter(settings, default_config(), Metrics())
    ex2.submit([ingested])
    assert ex2.pending == 0  # never exported again: no loops between keels


async def test_spilled_traces_are_handed_on_once_stored(store: Store, tmp_path: Path) -> None:
    w = TraceWriter(store, spill_dir=tmp_path / "spill", max_queue=2, batch_size=10)
    handed: list[Trace] = []
    w.on_stored = handed.extend
    await w.start()
    for i in range(6):  # no await in between: 4 of them spill to disk
        t = Trace(id=f"{i + 1:032x}", start_time=1000.0 + i, endpoint="chat", feature="f",
                  model_requested="mock", usage=Usage(input_tokens=10 + i, output_tokens=3,
                                                      cached_tokens=2),
                  cost_usd=0.5, tags={"k": "v"}, status=200)
        t.request_body = {"messages": [{"role": "user", "content": f"q{i}"}]}
        w.submit(t)
    assert w.spilled == 4
    await w.close()
    assert sorted(t.id for t in handed) == [f"{i + 1:032x}" for i in range(6)]
    rebuilt = next(t for t in handed if t.id == f"{6:032x}")  # one that was spilled
    assert rebuilt.usage == Usage(input_tokens=15, output_tokens=3, cached_tokens=2)
    assert (rebuilt.feature, rebuilt.cost_usd, rebuilt.tags, rebuilt.start_time) == (
        "f", 0.5, {"k": "v"}, 1005.0)
    assert rebuilt.request_body == {"messages": [{"role": "user", "content": "q5"}]}


def test_otlp_settings_are_checked() -> None:
    assert parse_headers("authorization=Bearer%20abc, X-Team = ml ,") == {
        "authorization": "Bearer abc", "x-team": "ml"}
    with pytest.raises(ConfigError, match="KEEL_OTLP_HEADERS"):
        parse_headers("novalue")
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"
    with pytest.raises(ConfigError, match="KEEL_OTLP_ENDPOINT"):
        traces_url("c:4318")
    tid, sid = otel_ids("0192f3a1b2c3d4e5f60718293a4b5c6d")
    assert tid.hex() == "0192f3a1b2c3d4e5f60718293a4b5c6d" and len(sid) == 8
    assert otel_ids("0192f3a1b2c3d4e5f60718293a4b5c6d") == (tid, sid)
    other_tid, _ = otel_ids("not-hex")
    assert len(other_tid) == 16


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_keel_to_keel(tmp_path: Path) -> None:
    with running_keel(tmp_path / "b", CONFIG) as b, \
            running_keel(tmp_path / "a", CONFIG, otlp_endpoint=b.url,
                         otlp_headers=f"authorization=Bearer%20{b.admin_key}") as a:
        assert a.state.otlp is not None
        a.state.otlp.interval_s = 0.05
        c = client(a)
        ids = []
        for q in ("one", "two two", "three three three"):
            raw = c.chat.completions.with_raw_response.create(
                model="mock", messages=[{"role": "user", "content": q}],
                extra_headers={"x-keel-feature": "checkout"})
            ids.append(raw.headers["x-keel-trace-id"])
        a.flush()
        originals = {i: stored(a, i) for i in ids}

        def arrived() -> list[dict[str, Any]]:
            b.flush()
            r = httpx.get(f"{b.url}/api/traces", params={"feature": "checkout"},
                          headers=b.admin_headers())
            rows = [t for t in r.json()["data"] if t["source"] == "otlp"]
            return rows if len(rows) == 3 else []

        copies = wait_for(arrived, "the exported traces stored by keel B")
    by_origin = {t["tags"]["otel.trace_id"]: t for t in copies}
    assert set(by_origin) == set(ids)
    for i, orig in originals.items():
        copy = by_origin[i]
        assert copy["input_tokens"] == orig["input_tokens"] > 0
        assert copy["output_tokens"] == orig["output_tokens"] > 0
        assert copy["cost_usd"] == pytest.approx(orig["cost_usd"]) and copy["cost_usd"] > 0
        assert copy["model_requested"] == orig["model_requested"] == "mock"
        assert copy["feature"] == "checkout" and copy["team"] == "admin"
        assert copy["status"] == 200 and copy["endpoint"] == "chat"
        assert copy["start_time"] == pytest.approx(orig["start_time"], abs=1e-6)
        assert copy["latency_ms"] == pytest.approx(orig["latency_ms"], abs=0.01)
        assert copy["id"] != i


# --- ingest ----------------------------------------------------------------------------------

NOW_NS = time.time_ns()


def av(v: Any) -> dict[str, Any]:
    """An OTLP JSON AnyValue."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [av(x) for x in v]}}
    return {"stringValue": v}


def json_span(span_id: str, attrs: dict[str, Any], *, name: str = "llm", status: Any = None,
              trace_id: str = "5b8efff798038103d269b633813fc60c", offset_ms: int = 0,
              duration_ms: int = 1500) -> dict[str, Any]:
    start = NOW_NS + offset_ms * 1_000_000
    span: dict[str, Any] = {
        "traceId": trace_id, "spanId": span_id, "name": name, "kind": 3,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + duration_ms * 1_000_000),
        "attributes": [{"key": k, "value": av(v)} for k, v in attrs.items()],
    }
    if status is not None:
        span["status"] = status
    return span


def json_request(*spans: dict[str, Any], service: str = "support-bot") -> dict[str, Any]:
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": av(service)}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}]}


def post(k: Keel, body: bytes | dict[str, Any], *, ctype: str = "application/json",
         key: str | None = None, **headers: str) -> httpx.Response:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return httpx.post(f"{k.url}/v1/traces", content=data, headers={
        "authorization": f"Bearer {key or k.admin_key}", "content-type": ctype, **headers})


def ingested(k: Keel, **filters: str) -> dict[str, dict[str, Any]]:
    """Stored otlp traces by span id."""
    k.flush()
    r = httpx.get(f"{k.url}/api/traces", params={"limit": "500", **filters},
                  headers=k.admin_headers())
    assert r.status_code == 200, r.text
    return {t["tags"]["otel.span_id"]: t for t in r.json()["data"] if t["source"] == "otlp"}


@pytest.fixture
def keel(tmp_path: Path) -> Iterator[Keel]:
    with running_keel(tmp_path, CONFIG) as k:
        yield k


def test_ingest_normalises_every_convention(keel: Keel) -> None:
    key = keel.create_key(team="growth")
    spans = [
        # current GenAI conventions
        json_span("00000000000000a1", {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-x", "gen_ai.response.model": "claude-sonnet-x",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.response.finish_reasons": ["stop"], "keel.feature": "summaries"}),
        # older GenAI names
        json_span("00000000000000a2", {
            "gen_ai.system": "openai", "gen_ai.request.model": "mock",
            "gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 20},
            offset_ms=1),
        # OpenInference
        json_span("00000000000000a3", {
            "openinference.span.kind": "LLM", "llm.model_name": "sonnet",
            "llm.provider": "anthropic", "llm.token_count.prompt": 10,
            "llm.token_count.completion": 5, "llm.token_count.total": 15,
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "hi there",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "hello!"}, offset_ms=2),
        # OpenLLMetry
        json_span("00000000000000a4", {
            "llm.request.type": "chat", "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-x", "llm.usage.total_tokens": 140,
            "gen_ai.usage.completion_tokens": 40, "gen_ai.usage.cache_read_input_tokens": 60,
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "sum this up"},
            offset_ms=3),
        # a failed call, status code as an enum name, error.type
        json_span("00000000000000a5", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "unknown-model-z",
            "error.type": "timeout", "gen_ai.usage.input_tokens": 7},
            status={"code": "STATUS_CODE_ERROR", "message": "upstream timed out"}, offset_ms=4),
    ]
    r = post(keel, json_request(*spans), key=key)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {}  # every span accepted
    got = ingested(keel, team="growth")
    assert set(got) == {f"00000000000000a{i}" for i in range(1, 6)}
    price_in, price_out, price_cached = 3.0 / 1e6, 15.0 / 1e6, 0.3 / 1e6

    cur = got["00000000000000a1"]
    assert (cur["provider"], cur["model_requested"], cur["model_served"]) == (
        "anthropic", "claude-sonnet-x", "claude-sonnet-x")
    assert (cur["input_tokens"], cur["output_tokens"], cur["cached_tokens"]) == (1200, 300, 1000)
    assert cur["cost_usd"] == pytest.approx(200 * price_in + 1000 * price_cached + 300 * price_out)
    assert cur["feature"] == "summaries" and cur["team"] == "growth"
    assert cur["status"] == 200 and cur["error_type"] is None
    assert cur["latency_ms"] == pytest.approx(1500)
    assert cur["start_time"] == pytest.approx(NOW_NS / 1e9, abs=1e-6)
    assert cur["tags"]["otel.trace_id"] == "5b8efff798038103d269b633813fc60c"

    old = got["00000000000000a2"]
    assert (old["provider"], old["model_requested"]) == ("openai", "mock")
    assert (old["input_tokens"], old["output_tokens"]) == (50, 20)
    assert old["cost_usd"] == pytest.approx(50 * price_in + 20 * price_out)
    assert old["feature"] == "support-bot"  # service.name when no keel.feature

    oi = got["00000000000000a3"]
    assert (oi["provider"], oi["model_requested"], oi["model_served"]) == (
        "anthropic", "sonnet", "sonnet")
    assert (oi["input_tokens"], oi["output_tokens"]) == (10, 5)
    assert oi["cost_usd"] == pytest.approx(10 * price_in + 5 * price_out)
    full = stored(keel, oi["id"])
    assert full["request"]["messages"] == [{"role": "user", "content": "hi there"}]
    assert full["response"]["choices"][0]["message"] == {"role": "assistant",
                                                         "content": "hello!"}

    ollm = got["00000000000000a4"]
    assert ollm["provider"] == "Anthropic"
    assert (ollm["input_tokens"], ollm["output_tokens"], ollm["cached_tokens"]) == (100, 40, 60)
    assert ollm["cost_usd"] == pytest.approx(40 * price_in + 60 * price_cached + 40 * price_out)
    assert stored(keel, ollm["id"])["request"]["messages"] == [
        {"role": "user", "content": "sum this up"}]

    bad = got["00000000000000a5"]
    assert bad["status"] == 500 and bad["error_type"] == "timeout"
    assert bad["error_message"] == "upstream timed out"
    assert bad["cost_usd"] == 0 and bad["tags"]["keel.price"] == "unknown"


def test_ingest_protobuf_gzip_and_partial_success(keel: Keel) -> None:
    def kv(k: str, v: Any) -> KeyValue:
        if isinstance(v, int):
            return KeyValue(key=k, value=AnyValue(int_value=v))
        return KeyValue(key=k, value=AnyValue(string_value=v))

    def span(sid: int, attrs: dict[str, Any], **kw: Any) -> Span:
        return Span(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
                    span_id=sid.to_bytes(8, "big"), name="call", kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=NOW_NS, end_time_unix_nano=NOW_NS + 2_000_000,
                    attributes=[kv(k, v) for k, v in attrs.items()], **kw)

    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("service.name", "pb-app")]),
        scope_spans=[ScopeSpans(spans=[
            span(1, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "mock",
                     "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 8}),
            span(2, {"http.request.method": "GET", "url.full": "http://x/"}),  # not an LLM call
            span(3, {"gen_ai.request.model": "mock", "gen_ai.usage.input_tokens": -4}),
            span(4, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        ])])])
    r = post(keel, gzip.compress(req.SerializeToString()), ctype="application/x-protobuf",
             **{"content-encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 3
    msg = resp.partial_success.error_message
    assert "2 span(s) are not LLM calls" in msg and "gen_ai.usage.input_tokens" in msg
    got = ingested(keel, feature="pb-app")
    assert list(got) == ["0000000000000001"]
    t = got["0000000000000001"]
    assert (t["input_tokens"], t["output_tokens"], t["model_requested"]) == (40, 8, "mock")
    assert t["cost_usd"] == pytest.approx(40 * 3.0 / 1e6 + 8 * 15.0 / 1e6)

    # JSON answers in JSON, with partial success in OTLP JSON form
    r = post(keel, json_request(json_span("00000000000000b1", {"db.system": "postgresql"})))
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"


def test_resent_batch_is_stored_and_rolled_up_once(keel: Keel) -> None:
    body = json_request(
        json_span("00000000000000c1", {"gen_ai.request.model": "mock",
                                       "gen_ai.usage.input_tokens": 10,
                                       "keel.feature": "dedupe"}),
        json_span("00000000000000c2", {"gen_ai.request.model": "mock",
                                       "gen_ai.usage.input_tokens": 20,
                                       "keel.feature": "dedupe"}, offset_ms=5))
    for _ in range(3):
        assert post(keel, body).status_code == 200
    keel.flush()
    assert post(keel, body).status_code == 200  # after the first copies are stored, too
    keel.flush()
    assert keel.run(count_traces(keel.state.store, TraceFilter(feature="dedupe"))) == 2

    async def rolled_up() -> tuple[int, int]:
        q = sa.select(sa.func.sum(rollups.c.requests), sa.func.sum(rollups.c.input_tokens)).where(
            rollups.c.feature == "dedupe", rollups.c.granularity == "d")
        async with keel.state.store.connect() as conn:
            row = (await conn.execute(q)).one()
        return int(row[0]), int(row[1])

    assert keel.run(rolled_up()) == (2, 30)


@pytest.mark.parametrize(("body", "headers", "status", "words"), [
    (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
    (b'["a"]', {"content-type": "application/json"}, 400, "JSON object"),
    (b'{"resourceSpans": "nope"}', {"content-type": "application/json"}, 400, "OTLP JSON"),
    (b"\xff\xff\xff\xff", {"content-type": "application/x-protobuf"}, 400, "protobuf"),
    (b"not gzip", {"content-type": "application/x-protobuf", "content-encoding": "gzip"}, 400,
     "gzip"),
    (gzip.compress(b"x" * 10)[:-6], {"content-type": "application/x-protobuf",
                                     "content-encoding": "gzip"}, 400, "truncated"),
    (b"{}", {"content-type": "text/plain"}, 415, "content-type"),
    (b"{}", {"content-type": "application/json", "content-encoding": "br"}, 415, "gzip"),
])
def test_bad_bodies_are_openai_errors_and_keel_keeps_serving(
    keel: Keel, body: bytes, headers: dict[str, str], status: int, words: str,
) -> None:
    r = httpx.post(f"{keel.url}/v1/traces", content=body,
                   headers={"authorization": f"Bearer {keel.admin_key}", **headers})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err["message"] and err["type"] == "invalid_request_error"
    ok = post(keel, json_request(json_span("00000000000000d1", {"gen_ai.request.model": "mock"})))
    assert ok.status_code == 200
    assert client(keel).chat.completions.create(model="mock", messages=USER).choices


def test_ingest_needs_a_gateway_key(keel: Keel) -> None:
    body = json_request(json_span("00000000000000e1", {"gen_ai.request.model": "mock"}))
    assert post(keel, body, key="sk-wrong").status_code == 401
    r = httpx.post(f"{keel.url}/v1/traces", json=body)
    assert r.status_code == 401 and "API key" in r.json()["error"]["message"]


def test_bound_key_and_malformed_ids(keel: Keel) -> None:
    key = keel.create_key(team="ops", feature="triage")
    spans = [json_span("00000000000000f1", {"gen_ai.request.model": "mock"}),
             json_span("zz", {"gen_ai.request.model": "mock"}),
             json_span("00000000000000f3", {"gen_ai.request.model": "mock"},
                       trace_id="00000000000000000000000000000000")]
    r = post(keel, json_request(*spans), key=key)
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "2"
    assert "span id must be 8 bytes" in r.json()["partialSuccess"]["errorMessage"]
    got = ingested(keel, team="ops")
    # the key's feature, not the service's name (naming another: tests/telemetry/test_otlp_auth)
    assert [t["feature"] for t in got.values()] == ["triage"]
    expected = hashlib.sha256(bytes.fromhex("5b8efff798038103d269b633813fc60c")
                              + bytes.fromhex("00000000000000f1")).hexdigest()[:20]
    assert got["00000000000000f1"]["id"] == f"{NOW_NS // 1_000_000:012x}{expected}"


def test_retry_after_takes_ascii_seconds_only() -> None:
    from keel.telemetry.otel_export import _seconds
    assert _seconds(" 7 ") == 7.0
    # An HTTP date, a superscript digit (str.isdigit says yes, float() refuses) and an
    # absurd number are not a delay to sleep on: the exporter's own backoff applies.
    assert _seconds("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert _seconds("²") is None
    assert _seconds("٣") is None
    assert _seconds("9" * 40) is None
    assert _seconds(None) is None
