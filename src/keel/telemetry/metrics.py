"""Prometheus metrics for the gateway, in a registry owned by the app (no globals).

Label values come from keel's config and code, never from a request, so the number of
series is bounded whatever clients send: ``model`` is a configured model or route name,
else ``other``; ``feature`` is a feature the config names (``features:``, a route's or a
policy's ``features``, a budget or limit on a feature) or ``default`` (none reported), else
``other``; ``error_type`` is one of keel's own error codes (at most ``MAX_ERROR_TYPES``
distinct, then ``other``); ``endpoint`` and ``status`` are keel's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from keel.types import Trace

if TYPE_CHECKING:
    from keel.config import KeelConfig

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OTHER = "other"  # the label value of every name the config does not know
DEFAULT_FEATURE = "default"  # the feature of a request that reports none
MAX_ERROR_TYPES = 64
_ERROR_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Labels:
    """The label values metrics may carry: names from the config, everything else ``other``."""

    def __init__(self, config: KeelConfig | None = None) -> None:
        self.models: frozenset[str] = frozenset()
        self.features: frozenset[str] = frozenset({DEFAULT_FEATURE})
        if config is not None:
            self.models = frozenset([*(m.name for m in config.models),
                                     *(r.name for r in config.routes)])
            named = [*(f.name for f in config.features),
                     *(f for r in config.routes for f in r.features),
                     *(f for p in config.policies for f in p.features),
                     *(b.name for b in config.budgets if b.scope == "feature"),
                     *(lim.name for lim in config.limits if lim.scope == "feature")]
            self.features |= {f for f in named if f != "*"}
        self._error_types: set[str] = set()

    def model(self, name: str | None) -> str:
        return name if name in self.models else OTHER

    def feature(self, name: str | None) -> str:
        name = name or DEFAULT_FEATURE
        return name if name in self.features else OTHER

    def error_type(self, code: str) -> str:
        """keel's own error codes; a malformed one, or one past ``MAX_ERROR_TYPES``, is
        ``other`` (a guard: codes come from keel's error classes, not from requests)."""
        if code in self._error_types:
            return code
        if len(self._error_types) >= MAX_ERROR_TYPES or not _ERROR_TYPE.fullmatch(code):
            return OTHER
        self._error_types.add(code)
        return code


class Metrics:
    def __init__(self, config: KeelConfig | None = None) -> None:
        self.label_values = Labels(config)
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
        model = self.label_values.model(t.model_requested)
        feature = self.label_values.feature(t.feature)
        key = (model, feature, t.endpoint, t.status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = _Children(self, model, feature, t.endpoint,
                                                       t.status)
        children.requests.inc()
        if t.error_type:
            self.errors.labels(model, feature, self.label_values.error_type(t.error_type)).inc()
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


class TraceWriterCollector:
    """The trace path's state, read from the writer at each scrape (no per-request cost):
    ``keel_trace_writer_restarts_total``, traces held in memory / waiting on disk,
    rejected and lost traces, and ``keel_dependency_up`` for the store and the journal."""

    def __init__(self, health: Callable[[], dict[str, Any]]) -> None:
        self.health = health

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        h = self.health()
        yield CounterMetricFamily("keel_trace_writer_restarts",
                                  "Times the trace writer loop failed and was restarted.",
                                  value=h["restarts"])
        yield CounterMetricFamily("keel_traces_rejected",
                                  "Traces the store refused even without their content "
                                  "(set aside in KEEL_DATA_DIR/spill/rejected-*.jsonl).",
                                  value=h["rejected"])
        yield CounterMetricFamily("keel_traces_lost",
                                  "Traces that could be kept neither in the store, the "
                                  "journal nor memory.", value=h["lost"])
        yield GaugeMetricFamily("keel_traces_held_in_memory",
                                "Traces kept in memory because the journal cannot be "
                                "written.", value=h["held_in_memory"])
        yield GaugeMetricFamily("keel_traces_waiting_on_disk",
                                "Traces in the journal only, waiting for the store.",
                                value=h["waiting_on_disk"])
        up = GaugeMetricFamily("keel_dependency_up",
                               "1 when a dependency works, 0 while keel runs degraded "
                               "without it.", labels=["dependency"])
        up.add_metric(["store"], 0 if h.get("store_error") else 1)
        up.add_metric(["journal"], 0 if h.get("journal_error") else 1)
        yield up

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)
