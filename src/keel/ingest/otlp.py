"""``POST /v1/traces``: LLM calls instrumented elsewhere become keel traces.

Accepts an OTLP/HTTP ``ExportTraceServiceRequest`` as protobuf (``application/x-protobuf``)
or OTLP JSON (``application/json``: hex ids, camelCase keys, ``AnyValue`` objects), either
optionally gzip-compressed. The caller authenticates with a keel key that may use the
gateway (the admin key or a gateway key; not a key with a role, not a feedback key), and its
spans are attributed as the gateway attributes requests: the key's team is every trace's
team, and a span's feature is the one it names (``keel.feature`` on the span or its
resource), else the key's, else the service's name. Whether a key may name a feature is the
caller's rule (``feature_of``, the gateway's): a key bound to one feature that names another
refuses the whole batch, so nothing of it is stored.

Every span that is an LLM call (it has ``gen_ai.*`` or ``llm.*`` attributes and is not an
agent, tool or chain span) becomes a trace with ``source="otlp"``. Attribute names are
normalised across convention versions: the current GenAI conventions, their older names,
OpenInference (``llm.*``) and OpenLLMetry. Traces are priced by keel's own price table and
go through the trace writer, so rollups treat them like gateway traces (but they are not
exported to ``KEEL_OTLP_ENDPOINT`` again).

Idempotent: a trace's id derives from the span (start time, trace id, span id), so a
re-sent batch stores each span once. The id still sorts by time like gateway ids do.
Spans that are not LLM calls, or are malformed, are counted in the response's
``partial_success``; an undecodable body is a 400 in the OpenAI error format.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from keel.config import KeelConfig
from keel.costs.prices import lookup
from keel.errors import BodyTooLarge, InvalidRequest
from keel.text import content_text
from keel.types import JSON, Principal, Trace, Usage

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPE = "application/json"
# A gzip body may expand at most this many times over KEEL_MAX_BODY_BYTES.
MAX_EXPANSION = 8
# Operations and span kinds that carry gen_ai/llm attributes but are not one model call
# (their token counts, when present, add up their children's: storing them double-counts).
NOT_MODEL_CALLS = frozenset({
    "execute_tool", "invoke_agent", "create_agent", "invoke_workflow",  # gen_ai.operation.name
    "agent", "tool", "chain", "retriever", "reranker", "guardrail", "evaluator",  # OpenInference
    "workflow", "task",  # OpenLLMetry traceloop.span.kind
})
EMBEDDING_OPS = frozenset({"embeddings", "embedding"})

# Attribute names, most current first.
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                "llm.token_count.prompt", "llm.usage.prompt_tokens", "llm.usage.input_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                 "llm.token_count.completion", "llm.usage.completion_tokens",
                 "llm.usage.output_tokens")
TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.token_count.total", "llm.usage.total_tokens")
CACHE_READ_TOKENS = ("gen_ai.usage.cache_read.input_tokens",
                     "gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.input_tokens.cached",
                     "llm.token_count.prompt_details.cache_read",
                     "llm.usage.cache_read_input_tokens")
CACHE_WRITE_TOKENS = ("gen_ai.usage.cache_creation.input_tokens",
                      "gen_ai.usage.cache_creation_input_tokens",
                      "llm.token_count.prompt_details.cache_write",
                      "llm.usage.cache_creation_input_tokens")
REASONING_TOKENS = ("gen_ai.usage.reasoning.output_tokens",
                    "llm.token_count.completion_details.reasoning",
                    "llm.usage.reasoning_tokens")
REQUEST_MODEL = ("gen_ai.request.model", "llm.request.model", "llm.model_name",
                 "gen_ai.response.model", "llm.response.model")
RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model", "llm.model_name")
PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "llm.vendor")
OPERATION = ("gen_ai.operation.name", "openinference.span.kind", "traceloop.span.kind",
             "llm.request.type")

# Column widths of the traces table: longer values are cut, so one bad span cannot make
# a whole batch fail to store.
WIDTH = {"feature": 128, "team": 128, "user": 256, "session": 256, "model": 256,
         "provider": 128, "error_type": 64, "route": 128, "variant": 256, "prompt": 128}


MAX_COUNT = 2**31 - 1  # the token columns are 32-bit integers

# (the feature a span names or None, the fallback) -> the feature it is counted under;
# raises a KeelError (e.g. 403 feature_not_allowed) to refuse the batch.
FeatureOf = Callable[[str | None, str], str]


class Malformed(ValueError):
    """One span cannot be stored; the message says why."""


# --- decoding --------------------------------------------------------------------------------


def decode_request(raw: bytes, content_type: str | None, content_encoding: str | None,
                   limit: int) -> tuple[ExportTraceServiceRequest, bool]:
    """The request, and whether it was JSON. Raises InvalidRequest (400/413/415)."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype in PROTOBUF_TYPES:
        is_json = False
    elif ctype == JSON_TYPE:
        is_json = True
    else:
        raise InvalidRequest(
            f"unsupported content-type '{ctype or '(none)'}': send an OTLP "
            "ExportTraceServiceRequest as application/x-protobuf or application/json",
            status=415, code="unsupported_media_type")
    raw = _decompress(raw, (content_encoding or "identity").strip().lower(), limit)
    if is_json:
        return _from_json(raw), True
    try:
        return ExportTraceServiceRequest.FromString(raw), False
    except (DecodeError, RecursionError) as exc:
        raise InvalidRequest(f"the body is not a valid protobuf ExportTraceServiceRequest: "
                             f"{exc}", code="invalid_otlp") from None


def _decompress(raw: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise InvalidRequest(f"unsupported content-encoding '{encoding}': send gzip or none",
                             status=415, code="unsupported_media_type")
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"content-encoding is gzip but the body does not decompress: "
                             f"{exc}", code="invalid_otlp") from None
    if len(out) > limit:
        raise BodyTooLarge(f"the body decompresses to over {limit} bytes; send smaller "
                           "batches (or raise KEEL_MAX_BODY_BYTES)")
    if not d.eof:
        raise InvalidRequest("content-encoding is gzip but the body is truncated",
                             code="invalid_otlp")
    return out


def _from_json(raw: bytes) -> ExportTraceServiceRequest:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", code="invalid_otlp") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object (an OTLP ExportTraceServiceRequest "
                             "with resourceSpans)", code="invalid_otlp")
    _hex_ids_to_base64(data)
    try:
        return json_format.ParseDict(data, ExportTraceServiceRequest(),  # type: ignore[no-any-return]
                                     ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidRequest(f"the body is not an OTLP JSON ExportTraceServiceRequest: {exc}",
                             code="invalid_otlp") from None


_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(data: JSON) -> None:
    """OTLP JSON writes ids as hex, the protobuf JSON mapping as base64: convert in place.
    An id that is not hex becomes empty, so its span is rejected as malformed."""

    def fix(obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        for k in _ID_KEYS:
            v = obj.get(k)
            if isinstance(v, str):
                try:
                    obj[k] = base64.b64encode(bytes.fromhex(v)).decode()
                except ValueError:
                    obj[k] = ""

    for rs in _list(data, "resourceSpans", "resource_spans"):
        for ss in _list(rs, "scopeSpans", "scope_spans"):
            for span in _list(ss, "spans"):
                fix(span)
                for link in _list(span, "links"):
                    fix(link)


def _list(obj: Any, *keys: str) -> list[Any]:
    if isinstance(obj, dict):
        for k in keys:
            v = obj.get(k)
            if isinstance(v, list):
                return v
    return []


def value_of(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in kvs}


# --- normalising a span ----------------------------------------------------------------------


class Attrs:
    """A span's attributes with lookups across alternative names."""

    def __init__(self, span: Mapping[str, Any], resource: Mapping[str, Any]) -> None:
        self.span = span
        self.resource = resource

    def first(self, *names: str) -> Any:
        for n in names:
            v = self.span.get(n)
            if v is not None and v != "":
                return v
        return None

    def text(self, *names: str, width: int = 256) -> str | None:
        v = self.first(*names)
        if v is None:
            return None
        return (v if isinstance(v, str) else str(v))[:width]

    def count(self, *names: str) -> int | None:
        """A token count: an int, an integral float or a numeric string; never negative."""
        for n in names:
            v = self.span.get(n)
            if v is None or v == "":
                continue
            if isinstance(v, bool):
                raise Malformed(f"{n} must be a number, got a boolean")
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            elif isinstance(v, str):
                raw = v
                try:
                    v = int(float(raw.strip()))
                except (ValueError, OverflowError):
                    raise Malformed(f"{n} must be a number, got '{raw[:40]}'") from None
            if not isinstance(v, int):
                raise Malformed(f"{n} must be a whole number, got {v!r}"[:120])
            if not 0 <= v <= MAX_COUNT:
                raise Malformed(f"{n} must be between 0 and {MAX_COUNT}, got {v}")
            return v
        return None

    def is_llm(self) -> bool:
        if not any(k.startswith(("gen_ai.", "llm.")) for k in self.span):
            return False
        return not any(str(self.span.get(k) or "").lower() in NOT_MODEL_CALLS
                       for k in OPERATION)


def trace_id_for(span: Span) -> str:
    """The keel id of a span: 12 hex of its start millisecond (so ids still sort by time)
    and 20 hex of a hash of its trace and span ids. Re-sending the span gives the same id."""
    ms = span.start_time_unix_nano // 1_000_000
    digest = hashlib.sha256(bytes(span.trace_id) + bytes(span.span_id)).hexdigest()
    return f"{ms:012x}{digest[:20]}"


def usage_of(a: Attrs) -> Usage:
    inp = a.count(*INPUT_TOKENS)
    out = a.count(*OUTPUT_TOKENS) or 0
    total = a.count(*TOTAL_TOKENS)
    if inp is None:
        inp = max((total or 0) - out, 0)
    cached = a.count(*CACHE_READ_TOKENS) or 0
    written = a.count(*CACHE_WRITE_TOKENS) or 0
    if cached + written > inp:
        # Some instrumentations (Anthropic-style) report cache tokens apart from input
        # tokens; keel's input count includes them.
        inp += cached + written
    return Usage(input_tokens=inp, output_tokens=out, cached_tokens=cached,
                 cache_write_tokens=written, reasoning_tokens=a.count(*REASONING_TOKENS) or 0)


@dataclass
class Outcome:
    traces: list[Trace] = field(default_factory=list)
    not_llm: int = 0
    malformed: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return self.not_llm + len(self.malformed)

    def message(self) -> str:
        parts = []
        if self.not_llm:
            parts.append(f"{self.not_llm} span(s) are not LLM calls (no gen_ai.* or llm.* "
                         "attributes, or an agent/tool/chain span) and were not stored")
        if self.malformed:
            shown = "; ".join(self.malformed[:5])
            more = f" (and {len(self.malformed) - 5} more)" if len(self.malformed) > 5 else ""
            parts.append(f"{len(self.malformed)} span(s) are malformed: {shown}{more}")
        return "; ".join(parts)


def ingest(req: ExportTraceServiceRequest, principal: Principal, config: KeelConfig, *,
           feature_of: FeatureOf, capture_content: bool = True) -> Outcome:
    """The traces of every LLM-call span in ``req``, and what was rejected. Raises what
    ``feature_of`` raises: a span whose feature the caller may not report refuses all."""
    out = Outcome()
    seen: set[str] = set()
    for rs in req.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                a = Attrs(attributes(span.attributes), resource)
                if not a.is_llm():
                    out.not_llm += 1
                    continue
                try:
                    t = span_trace(span, a, principal, config, feature_of=feature_of,
                                   capture_content=capture_content)
                except (Malformed, TypeError, ValueError) as exc:
                    name = span.name[:60] or "(unnamed)"
                    out.malformed.append(f"span '{name}' {bytes(span.span_id).hex()}: {exc}")
                    continue
                if t.id not in seen:  # the same span twice in one request: stored once
                    seen.add(t.id)
                    out.traces.append(t)
    return out


def span_trace(span: Span, a: Attrs, principal: Principal, config: KeelConfig, *,
               feature_of: FeatureOf, capture_content: bool = True) -> Trace:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise Malformed("trace id must be 16 bytes (32 hex characters), not all zero")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise Malformed("span id must be 8 bytes (16 hex characters), not all zero")
    if not 0 < span.start_time_unix_nano // 1_000_000 < 16**12:  # ids hold 12 hex of ms
        raise Malformed("start time is missing or out of range")
    end_ns = span.end_time_unix_nano or span.start_time_unix_nano
    if end_ns < span.start_time_unix_nano:
        raise Malformed("the span ends before it starts")
    usage = usage_of(a)
    op = str(a.first(*OPERATION) or "chat").lower()
    requested = a.text(*REQUEST_MODEL, width=WIDTH["model"])
    served = a.text(*RESPONSE_MODEL, width=WIDTH["model"]) or requested
    start = span.start_time_unix_nano / 1e9
    t = Trace(
        id=trace_id_for(span), start_time=start, end_time=end_ns / 1e9,
        endpoint="embeddings" if op in EMBEDDING_OPS else "chat",
        key_id=principal.key_id, team=principal.team[:WIDTH["team"]],
        feature=_feature(a, feature_of), source="otlp", attempts=1,
        user=a.text("user.id", "enduser.id", width=WIDTH["user"]),
        session=a.text("session.id", "gen_ai.conversation.id", width=WIDTH["session"]),
        model_requested=requested, model_served=served,
        provider=a.text(*PROVIDER, width=WIDTH["provider"]),
        latency_ms=(end_ns - span.start_time_unix_nano) / 1e6, usage=usage,
        route=a.text("keel.route", width=WIDTH["route"]),
        variant=a.text("keel.variant", width=WIDTH["variant"]),
        prompt_name=a.text("keel.prompt.name", width=WIDTH["prompt"]),
        cache_hit=a.first("keel.cache_hit") is True,
        stream=a.first("keel.stream", "llm.is_streaming") is True,
    )
    version = a.first("keel.prompt.version")
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        v = int(version) if version is not None and t.prompt_name else None
        t.prompt_version = v if v is not None and 0 <= v <= MAX_COUNT else None
    ttft = a.first("keel.ttft_ms")
    if isinstance(ttft, (int, float)) and not isinstance(ttft, bool) and math.isfinite(ttft) \
            and ttft >= 0:
        t.ttft_ms = float(ttft)
    tags = {"otel.trace_id": bytes(span.trace_id).hex(), "otel.span_id": bytes(span.span_id).hex()}
    service = a.resource.get("service.name") or a.span.get("service.name")
    if service:
        tags["otel.service"] = str(service)[:128]
    _status(t, span, a)
    price = (lookup(requested, config) if requested else None) or \
        (lookup(served, config) if served else None)
    if price is not None:
        t.cost_usd = price.cost(usage)
    else:
        reported = a.first("keel.cost_usd")
        if isinstance(reported, (int, float)) and not isinstance(reported, bool) \
                and math.isfinite(reported) and reported >= 0:
            t.cost_usd = float(reported)
            tags["keel.price"] = "reported"
        else:
            tags["keel.price"] = "unknown"
    t.tags = tags
    if capture_content:
        _content(t, a, op)
    return t


def _feature(a: Attrs, feature_of: FeatureOf) -> str:
    """The feature the span names, else the key's, else its service's name. The service's
    name is a default, not a claim: a key bound to a feature keeps its own."""
    named = a.span.get("keel.feature") or a.resource.get("keel.feature")
    service = a.span.get("service.name") or a.resource.get("service.name")
    feature = feature_of(str(named) if named else None, str(service) if service else "default")
    return feature[:WIDTH["feature"]]


def _status(t: Trace, span: Span, a: Attrs) -> None:
    error_type = a.text("error.type", width=WIDTH["error_type"])
    failed = span.status.code == Status.STATUS_CODE_ERROR or error_type is not None
    code = a.first("http.response.status_code", "http.status_code")
    with contextlib.suppress(TypeError, ValueError):
        code = int(code) if code is not None else None
    if not failed:
        t.status = code if isinstance(code, int) and 100 <= code < 400 else 200
        return
    t.status = code if isinstance(code, int) and 400 <= code < 600 else 500
    message = span.status.message or None
    for event in span.events:
        if event.name == "exception":
            ev = attributes(event.attributes)
            error_type = error_type or (str(ev["exception.type"])[:WIDTH["error_type"]]
                                        if ev.get("exception.type") else None)
            message = message or (str(ev["exception.message"])
                                  if ev.get("exception.message") else None)
    t.error_type = error_type or "span_error"
    t.error_message = message


# --- content ---------------------------------------------------------------------------------


def _content(t: Trace, a: Attrs, op: str) -> None:
    """Messages, when the span carries them, in the OpenAI shape gateway traces use."""
    if op in EMBEDDING_OPS:
        return
    inputs = _json_list(a.span.get("gen_ai.input.messages"))
    outputs = _json_list(a.span.get("gen_ai.output.messages"))
    messages = [m for m in (_openai_message(x) for x in inputs or ()) if m]
    system = _json_list(a.span.get("gen_ai.system_instructions"))
    if system:
        messages.insert(0, {"role": "system", "content": content_text(system, "", key="content")})
    choices: list[JSON] = []
    for i, x in enumerate(outputs or ()):
        msg = _openai_message(x)
        if msg:
            reason = x.get("finish_reason") if isinstance(x, dict) else None
            choices.append({"index": i, "message": msg, "finish_reason": reason or None})
    if not messages:  # OpenInference, then OpenLLMetry, flattened attributes
        messages = _flattened(a.span, "llm.input_messages.", "message.")
        messages = messages or _flattened(a.span, "gen_ai.prompt.", "")
    if not choices:
        flat = _flattened(a.span, "llm.output_messages.", "message.")
        flat = flat or _flattened(a.span, "gen_ai.completion.", "")
        choices = [{"index": i, "message": {"role": m.get("role") or "assistant",
                                            "content": m.get("content")},
                    "finish_reason": m.pop("finish_reason", None)} for i, m in enumerate(flat)]
    if messages:
        t.request_body = {"model": t.model_requested, "messages": messages}
        for name in ("temperature", "top_p", "max_tokens"):
            v = a.first(f"gen_ai.request.{name}")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                t.request_body[name] = v
    if choices:
        t.response_body = {"object": "chat.completion", "model": t.model_served,
                           "choices": choices, "usage": t.usage.to_openai()}


def _json_list(v: Any) -> list[Any] | None:
    if isinstance(v, str):
        try:
            v = orjson.loads(v)
        except orjson.JSONDecodeError:
            return None
    return v if isinstance(v, list) else None


def _openai_message(m: Any) -> JSON | None:
    if not isinstance(m, dict):
        return None
    role = str(m.get("role") or "user")
    parts = m.get("parts")
    if not isinstance(parts, list):
        return {"role": role, "content": m.get("content")}
    calls = []
    for p in parts:
        if not isinstance(p, dict):
            continue
        if p.get("type") == "tool_call_response":
            resp = p.get("response")
            return {"role": "tool", "tool_call_id": p.get("id"),
                    "content": resp if isinstance(resp, str) else orjson.dumps(resp).decode()}
        if p.get("type") == "tool_call":
            args = p.get("arguments")
            calls.append({"id": p.get("id"), "type": "function", "function": {
                "name": p.get("name"),
                "arguments": args if isinstance(args, str) else orjson.dumps(args).decode()}})
    out: JSON = {"role": role, "content": content_text(parts, "", key="content") or None}
    if calls:
        out["tool_calls"] = calls
    return out


_INDEXED = re.compile(r"(\d+)\.(.+)")


def _flattened(attrs: Mapping[str, Any], prefix: str, inner: str) -> list[JSON]:
    """``{prefix}{i}.{inner}role`` / ``...content`` attributes as a list of messages."""
    found: dict[int, JSON] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        m = _INDEXED.fullmatch(key[len(prefix):])
        if m is None or not m.group(2).startswith(inner):
            continue
        name = m.group(2)[len(inner):]
        if name in ("role", "content", "finish_reason"):
            found.setdefault(int(m.group(1)), {})[name] = value
    return [found[i] for i in sorted(found) if "role" in found[i] or "content" in found[i]]


def response_for(out: Outcome, *, as_json: bool) -> tuple[bytes, str]:
    """The OTLP/HTTP answer (body, content type): partial_success when spans were rejected."""
    resp = ExportTraceServiceResponse()
    if out.rejected:
        resp.partial_success.CopyFrom(ExportTracePartialSuccess(
            rejected_spans=out.rejected, error_message=out.message()))
    if as_json:
        return orjson.dumps(json_format.MessageToDict(resp)), JSON_TYPE
    return resp.SerializeToString(), PROTOBUF_TYPES[0]
