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
        self.trace_queue = Gauge("keel_trace_queue_depth", "Traces waiting to be written.",
                                 registry=self.registry)

    def observe(self, t: Trace) -> None:
        model = t.model_requested or ""
        feature = t.feature or ""
        self.requests.labels(model, feature, t.endpoint, str(t.status)).inc()
        if t.error_type:
            self.errors.labels(model, feature, t.error_type).inc()
        self.latency.labels(model, feature).observe(t.latency_ms / 1000.0)
        if t.ttft_ms is not None:
            self.ttft.labels(model, feature).observe(t.ttft_ms / 1000.0)
        u = t.usage
        if u.input_tokens:
            self.tokens.labels(model, feature, "input").inc(u.input_tokens)
        if u.output_tokens:
            self.tokens.labels(model, feature, "output").inc(u.output_tokens)
        if u.cached_tokens:
            self.tokens.labels(model, feature, "cached").inc(u.cached_tokens)
        if t.cost_usd:
            self.cost.labels(model, feature).inc(t.cost_usd)

    def render(self) -> bytes:
        return generate_latest(self.registry)
