"""A real OTLP/HTTP trace receiver for tests: decodes protobuf (gzip or not) and keeps spans."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs(v.kvlist_value.values)
    return getattr(v, kind) if kind else None


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        out[kv.key] = value(kv.value)
    return out


@dataclass
class ReceivedSpan:
    span: Span
    attrs: dict[str, Any]
    resource: dict[str, Any]
    scope: str


class OtlpReceiver:
    """``POST /v1/traces``. ``status`` makes it answer with an error (e.g. 503)."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/traces", self._traces, methods=["POST"])])

    async def _traces(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if request.headers.get("content-type") != "application/x-protobuf":
            return Response(b"want protobuf", status_code=415)
        if self.status != 200:
            return Response(b"unavailable", status_code=self.status)
        req = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            self.requests.append(req)
            self.headers.append(dict(request.headers))
        return Response(ExportTraceServiceResponse().SerializeToString(),
                        media_type="application/x-protobuf")

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            requests = list(self.requests)
        out = []
        for req in requests:
            for rs in req.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append(ReceivedSpan(span, attrs(span.attributes), resource,
                                                ss.scope.name))
        return out

    def by_keel_id(self) -> dict[str, ReceivedSpan]:
        return {s.attrs["keel.trace_id"]: s for s in self.spans()}
