"""Every stored trace leaves as an OpenTelemetry span: OTLP/HTTP protobuf, GenAI conventions.

The trace writer hands each stored batch to ``OtlpExporter.submit`` (a non-blocking append
to a bounded queue). A background task sends the queue in batches (up to ``batch_size``
spans, or whatever has waited ``interval_s``) to ``{endpoint}/v1/traces``, gzip-compressed.
When the collector is unreachable or answers 429/5xx, a batch is retried a few times with
exponential backoff and then dropped; so is whatever arrives while the queue is full. Drops
are counted (``keel_otlp_dropped_spans_total{reason}``) and logged: export never blocks a
request, never holds up the writer, and never grows without bound.

Spans follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``) plus ``keel.*``
attributes for what the conventions have no name for (feature, team, prompt, cost, route).
Message content is exported only with ``KEEL_OTLP_CAPTURE_CONTENT=true``. Traces ingested
from OTLP (``source="otlp"``) are never exported again, so two keels cannot loop spans.

The span's ids derive from keel's trace id: keel ids are 32 hex characters, so the OTel
trace id *is* the keel trace id (search a backend for it directly); the span id is the first
8 bytes of a SHA-256 of it. Both are stable: a trace exported twice is the same span.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import aiohttp
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from prometheus_client import Counter

from keel import __version__
from keel.backoff import Backoff
from keel.config import KeelConfig, Settings
from keel.errors import ConfigError
from keel.telemetry.metrics import Metrics
from keel.types import JSON, Trace

log = logging.getLogger("keel.telemetry.otlp")

TRACES_PATH = "/v1/traces"
RETRYABLE_STATUS = frozenset({408, 429, 502, 503, 504})
# gen_ai.provider.name for each provider kind (the conventions' well-known values).
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
                  "mock": "keel.mock"}


# --- configuration ---------------------------------------------------------------------------


def parse_headers(raw: str | None) -> dict[str, str]:
    """``KEEL_OTLP_HEADERS``: ``k=v,k2=v2`` with URL-encoded values (the OTel env format)."""
    out: dict[str, str] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"KEEL_OTLP_HEADERS: '{part.strip()}' is not 'name=value'; use a "
                "comma-separated list such as 'authorization=Bearer%20TOKEN,x-team=ml'")
        out[key.strip().lower()] = unquote(value.strip())
    return out


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (as ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    base = endpoint.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"KEEL_OTLP_ENDPOINT: '{endpoint}' is not an http(s) URL; use e.g. "
                          "http://otel-collector:4318")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


# --- trace -> span ---------------------------------------------------------------------------


def otel_ids(trace_id: str) -> tuple[bytes, bytes]:
    """(16-byte trace id, 8-byte span id), stable for a keel trace id."""
    digest = hashlib.sha256(trace_id.encode()).digest()
    tid: bytes | None = None
    if len(trace_id) == 32:
        with contextlib.suppress(ValueError):
            tid = bytes.fromhex(trace_id)
    if not tid or not any(tid):
        tid = digest[8:24]
    sid = digest[:8]
    return tid, (sid if any(sid) else b"\x00" * 7 + b"\x01")


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def _kv(attrs: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items() if v is not None]


def operation_name(trace: Trace) -> str:
    return "embeddings" if trace.endpoint == "embeddings" else "chat"


def span_attributes(
    t: Trace, *, capture_content: bool = False, provider_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The span's attributes for a trace (None values are left out)."""
    op = operation_name(t)
    req = t.request_body if isinstance(t.request_body, dict) else {}
    resp = t.response_body if isinstance(t.response_body, dict) else {}
    u = t.usage
    a: dict[str, Any] = {
        "gen_ai.operation.name": op,
        "gen_ai.provider.name": (provider_names or {}).get(t.provider or "", t.provider),
        "gen_ai.request.model": t.model_requested,
        "gen_ai.response.model": t.model_served,
        "gen_ai.usage.input_tokens": u.input_tokens,
        "gen_ai.usage.output_tokens": u.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": u.cached_tokens or None,
        "gen_ai.usage.cache_creation.input_tokens": u.cache_write_tokens or None,
        "gen_ai.conversation.id": t.session,
    }
    for name, key, kind in (("temperature", "temperature", float), ("top_p", "top_p", float),
                            ("max_tokens", "max_tokens", int),
                            ("max_tokens", "max_completion_tokens", int)):
        v = req.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            a.setdefault(f"gen_ai.request.{name}", kind(v))
    if isinstance(resp.get("id"), str):
        a["gen_ai.response.id"] = resp["id"]
    reasons = [str(c["finish_reason"]) for c in resp.get("choices") or ()
               if isinstance(c, dict) and c.get("finish_reason")]
    if reasons:
        a["gen_ai.response.finish_reasons"] = reasons
    if t.error_type or t.status >= 400:
        a["error.type"] = t.error_type or str(t.status)
    a["http.response.status_code"] = t.status
    a.update({
        "keel.trace_id": t.id,
        "keel.feature": t.feature,
        "keel.team": t.team,
        "keel.provider": t.provider,
        "keel.prompt.name": t.prompt_name,
        "keel.prompt.version": t.prompt_version,
        "keel.cost_usd": float(t.cost_usd),
        "keel.route": t.route,
        "keel.variant": t.variant,
        "keel.cache_hit": t.cache_hit,
        "keel.stream": t.stream,
    })
    if t.ttft_ms is not None:
        a["keel.ttft_ms"] = float(t.ttft_ms)
    if capture_content and op == "chat":
        messages = req.get("messages")
        if isinstance(messages, list):
            a["gen_ai.input.messages"] = orjson.dumps(input_messages(messages)).decode()
        if resp.get("choices"):
            a["gen_ai.output.messages"] = orjson.dumps(output_messages(resp)).decode()
    return a


def span_for(
    t: Trace, *, capture_content: bool = False, provider_names: Mapping[str, str] | None = None,
) -> Span:
    tid, sid = otel_ids(t.id)
    op = operation_name(t)
    model = t.model_requested or t.model_served
    start_ns = int(t.start_time * 1e9)
    end_ns = max(int((t.end_time or t.start_time) * 1e9), start_ns)
    failed = t.status >= 400 or bool(t.error_type)
    status = Status(code=Status.STATUS_CODE_ERROR, message=t.error_message or "") if failed \
        else Status()
    return Span(
        trace_id=tid, span_id=sid, name=f"{op} {model}" if model else op,
        kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start_ns, end_time_unix_nano=end_ns,
        attributes=_kv(span_attributes(t, capture_content=capture_content,
                                       provider_names=provider_names)),
        status=status,
    )


def export_request(
    traces: Iterable[Trace], *, capture_content: bool = False,
    provider_names: Mapping[str, str] | None = None,
) -> ExportTraceServiceRequest:
    spans = [span_for(t, capture_content=capture_content, provider_names=provider_names)
             for t in traces]
    resource = Resource(attributes=_kv({"service.name": "keel", "service.version": __version__}))
    scope = InstrumentationScope(name="keel", version=__version__)
    return ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=spans)])])


def _text_parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[JSON] = []
    for p in content if isinstance(content, list) else ():
        if not isinstance(p, dict):
            continue
        if p.get("type") == "text" and isinstance(p.get("text"), str):
            parts.append({"type": "text", "content": p["text"]})
        elif p.get("type") == "image_url":
            url = (p.get("image_url") or {}).get("url")
            if isinstance(url, str) and not url.startswith("data:"):
                parts.append({"type": "uri", "modality": "image", "uri": url})
            else:  # inline data is left out: it would dwarf the span
                parts.append({"type": "blob", "modality": "image"})
    return parts


def _tool_calls(calls: Any) -> list[JSON]:
    out: list[JSON] = []
    for call in calls if isinstance(calls, list) else ():
        fn = (call.get("function") or {}) if isinstance(call, dict) else {}
        args: Any = fn.get("arguments")
        if isinstance(args, str):
            with contextlib.suppress(orjson.JSONDecodeError):
                args = orjson.loads(args)
        out.append({"type": "tool_call", "id": call.get("id"), "name": fn.get("name"),
                    "arguments": args})
    return out


def input_messages(messages: list[Any]) -> list[JSON]:
    """OpenAI chat messages in the conventions' ``gen_ai.input.messages`` shape."""
    out: list[JSON] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role") or "user")
        if role == "tool":
            parts: list[JSON] = [{"type": "tool_call_response", "id": m.get("tool_call_id"),
                                  "response": m.get("content")}]
        else:
            parts = _text_parts(m.get("content")) + _tool_calls(m.get("tool_calls"))
        out.append({"role": role, "parts": parts})
    return out


def output_messages(completion: JSON) -> list[JSON]:
    out: list[JSON] = []
    for c in completion.get("choices") or ():
        if not isinstance(c, dict):
            continue
        msg = c.get("message") or {}
        out.append({"role": str(msg.get("role") or "assistant"),
                    "parts": _text_parts(msg.get("content")) + _tool_calls(msg.get("tool_calls")),
                    "finish_reason": c.get("finish_reason") or ""})
    return out


# --- the exporter ----------------------------------------------------------------------------


class OtlpExporter:
    """Batches spans to an OTLP/HTTP collector in the background. ``submit`` never blocks."""

    def __init__(
        self, settings: Settings, config: KeelConfig, metrics: Metrics, *,
        batch_size: int = 512, interval_s: float = 1.0, max_queue: int = 8192,
        retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 10.0,
        close_timeout_s: float = 5.0,
    ) -> None:
        assert settings.otlp_endpoint
        self.url = traces_url(settings.otlp_endpoint)
        self.headers = {**parse_headers(settings.otlp_headers),
                        "content-type": "application/x-protobuf", "content-encoding": "gzip"}
        self.capture_content = settings.otlp_capture_content
        self.provider_names = {
            p.name: ("azure.ai.openai" if p.kind == "openai" and p.api_version
                     else PROVIDER_NAMES.get(p.kind, p.name)) for p in config.providers}
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_queue = max_queue
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.close_timeout_s = close_timeout_s
        self._pending: deque[Trace] = deque()
        self._oldest_at = 0.0  # loop time the oldest pending span arrived
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = False
        self._unlogged_drops = 0
        self._last_drop_log = 0.0
        self.exported_spans = Counter(
            "keel_otlp_exported_spans", "Spans accepted by the OTLP endpoint.",
            registry=metrics.registry)
        self.dropped_spans = Counter(
            "keel_otlp_dropped_spans", "Spans not exported: queue_full, export_failed "
            "(endpoint unreachable or erroring after retries), rejected (by the endpoint), "
            "shutdown.", ("reason",), registry=metrics.registry)

    # --- called by the trace writer ----------------------------------------------------------

    def submit(self, traces: Iterable[Trace]) -> None:
        """Queue stored traces for export; what does not fit is dropped and counted."""
        if self._closing and self._task is None:
            return
        added = dropped = 0
        for t in traces:
            if t.source == "otlp":
                continue  # ingested spans go back out never: no export loops
            if len(self._pending) >= self.max_queue:
                dropped += 1
                continue
            if not self._pending:
                self._oldest_at = time.monotonic()
            self._pending.append(t)
            added += 1
        if dropped:
            self._dropped(dropped, "queue_full", "the export queue is full")
        if added:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s, connect=min(3.0, self.timeout_s)),
            connector=aiohttp.TCPConnector(limit=2))
        self._task = asyncio.create_task(self._run(), name="keel-otlp-exporter")

    async def aclose(self) -> None:
        """Send what is queued (one attempt per batch, within ``close_timeout_s``), then stop."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.close_timeout_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except Exception:  # never let export stop keel's shutdown
                log.exception("the OTLP exporter failed")
            self._task = None
        if self._pending:
            self._dropped(len(self._pending), "shutdown", "keel stopped before they were sent")
            self._pending.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- internals ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while self._pending or not self._closing:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            while len(self._pending) < self.batch_size and not self._closing:
                remaining = self._oldest_at + self.interval_s - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)
            n = min(self.batch_size, len(self._pending))
            batch = [self._pending.popleft() for _ in range(n)]
            self._oldest_at = time.monotonic()
            try:
                await self._export(batch)
            except asyncio.CancelledError:  # aclose ran out of time mid-batch
                self._dropped(len(batch), "shutdown", "keel stopped while they were being sent")
                raise
            except Exception:  # a bug must not stop the exporter
                log.exception("OTLP export of %d spans failed unexpectedly", len(batch))
                self._dropped(len(batch), "export_failed", "an unexpected error")

    def _encode(self, batch: list[Trace]) -> bytes:
        req = export_request(batch, capture_content=self.capture_content,
                             provider_names=self.provider_names)
        return gzip.compress(req.SerializeToString(), compresslevel=5)

    async def _export(self, batch: list[Trace]) -> None:
        # Encoding 512 spans takes a few ms: off the event loop, so requests are not delayed.
        body = await asyncio.to_thread(self._encode, batch)
        assert self._session is not None
        attempts = 1 if self._closing else self.retries + 1
        problem = ""
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                async with self._session.post(self.url, data=body, headers=self.headers) as r:
                    payload = await r.read()
                    if 200 <= r.status < 300:
                        self._accepted(len(batch), payload)
                        return
                    problem = f"HTTP {r.status}: {payload[:200].decode('utf-8', 'replace')}"
                    if r.status not in RETRYABLE_STATUS:
                        self._dropped(len(batch), "rejected", f"the endpoint refused them "
                                      f"({problem})")
                        return
                    retry_after = _seconds(r.headers.get("retry-after"))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt + 1 < attempts and not self._closing:
                delay = retry_after if retry_after is not None else \
                    Backoff(base=self.backoff_s, jitter="proportional").delay(attempt)
                with contextlib.suppress(TimeoutError):
                    # Interrupted by aclose: a stopping keel does not sit out the backoff.
                    await asyncio.wait_for(self._stop.wait(), min(delay, 30.0))
        self._dropped(len(batch), "export_failed",
                      f"{self.url} failed {attempts} time(s), last: {problem}")

    def _accepted(self, n: int, payload: bytes) -> None:
        rejected = 0
        message = ""
        with contextlib.suppress(Exception):
            resp = ExportTraceServiceResponse.FromString(payload)
            rejected = int(resp.partial_success.rejected_spans)
            message = str(resp.partial_success.error_message)
        if rejected > 0:
            self._dropped(min(rejected, n), "rejected", f"the endpoint rejected them: {message}")
        self.exported_spans.inc(max(n - rejected, 0))

    def _dropped(self, n: int, reason: str, why: str) -> None:
        self.dropped_spans.labels(reason).inc(n)
        if reason != "queue_full":
            log.warning("OTLP export: dropped %d span(s) (%s): %s", n, reason, why)
            return
        # A full queue drops on every stored batch: log at most every 10 s, with the count.
        self._unlogged_drops += n
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:
            log.warning("OTLP export: dropped %d span(s) (queue_full): %s", self._unlogged_drops,
                        why)
            self._unlogged_drops = 0
            self._last_drop_log = now


def _seconds(value: str | None) -> float | None:
    """A Retry-After given in whole seconds (ASCII digits only: ``str.isdigit`` also takes
    ``²``, which ``float`` refuses); an HTTP date or anything else is None."""
    raw = (value or "").strip()
    if raw and len(raw) <= 9 and raw.isascii() and raw.isdigit():
        return float(raw)
    return None
