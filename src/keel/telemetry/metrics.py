"""Prometheus metrics for the gateway, in a registry owned by the app (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from keel.types import Trace

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "feature")
        self.requests = Counter("keel_requests", "Requests answered, by outcome.",
                                (*labels, "endpoint", "status"), registry=self.registry)
        self.errors = Counter("keel_errors", "Failed requests, by error type.",
                              (*labels, "error_type"), registry=self.registry)
        self.latency = Histogram("keel_request_latency_seconds", "End-to-end request latency.",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("keel_time_to_first_token_seconds",
                              "Time to first streamed token.", labels, buckets=LATENCY_BUCKETS,
                              registry=self.registry)
        self.tokens = Counter("keel_tokens", "Tokens processed.", (*labels, "direction"),
                              registry=self.registry)
        self.cost = Counter("keel_cost_usd", "Cost in USD at configured prices.", labels,
                            registry=self.registry)
        # Labelled children, looked up once per label set: .labels() is costly per request.
        self._children: dict[tuple[str, str, str, int], _Children] = {}
        self.trace_queue = Gauge("keel_trace_queue_depth", "Traces waiting to be written.",
                                 registry=self.registry)

    def observe(self, t: Trace) -> None:
        model = t.model_requested or ""
        feature = t.feature or ""
        key = (model, feature, t.endpoint, t.status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = _Children(self, model, feature, t.endpoint,
                                                       t.status)
        children.requests.inc()
        if t.error_type:
            self.errors.labels(model, feature, t.error_type).inc()
        children.latency.observe(t.latency_ms / 1000.0)
        if t.ttft_ms is not None:
            children.ttft.observe(t.ttft_ms / 1000.0)
        u = t.usage
        if u.input_tokens:
            children.tokens_in.inc(u.input_tokens)
        if u.output_tokens:
            children.tokens_out.inc(u.output_tokens)
        if u.cached_tokens:
            children.tokens_cached.inc(u.cached_tokens)
        if t.cost_usd:
            children.cost.inc(t.cost_usd)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Children:
    __slots__ = ("cost", "latency", "requests", "tokens_cached", "tokens_in", "tokens_out",
                 "ttft")

    def __init__(self, m: Metrics, model: str, feature: str, endpoint: str, status: int) -> None:
        self.requests = m.requests.labels(model, feature, endpoint, str(status))
        self.latency = m.latency.labels(model, feature)
        self.ttft = m.ttft.labels(model, feature)
        self.tokens_in = m.tokens.labels(model, feature, "input")
        self.tokens_out = m.tokens.labels(model, feature, "output")
        self.tokens_cached = m.tokens.labels(model, feature, "cached")
        self.cost = m.cost.labels(model, feature)
