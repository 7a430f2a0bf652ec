"""Settings (environment, ``KEEL_*``) and the YAML config file (providers, models).

The YAML file is parsed once into typed models. Any problem raises ``ConfigError``
with a message naming the file, the key path, what is wrong and how to fix it; keel
refuses to start rather than run half-configured.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel.errors import ConfigError
from keel.locations import locate
from keel.types import Price, PriceTier

DEFAULT_CONFIG_FILE = "keel.yaml"


class Settings(BaseSettings):
    """Process settings, read from ``KEEL_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="KEEL_", extra="ignore")

    config: str = Field(DEFAULT_CONFIG_FILE, description="Path of the YAML config file; unset: "
                        "found as keel.locations describes.")
    data_dir: str = Field(".keel", description="Directory for the SQLite file and spill files; "
                          "unset: found as keel.locations describes.")
    database_url: str | None = Field(None, description="sqlite:///path or postgresql://...")
    redis_url: str | None = Field(None, description="redis://host:port/db (optional)")
    redis_prefix: str = Field("keel:", description="Prefix of every Redis key keel writes.")
    master_key: str | None = Field(None, description="Admin key; generated if unset.")
    host: str = "127.0.0.1"
    port: int = 4000
    max_body_bytes: int = Field(4 * 1024 * 1024, description="Largest accepted request body.")
    max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest request head (request line and header "
                                        "fields); a larger one gets a 431 and the connection "
                                        "is closed.")
    max_headers: int = Field(100, ge=1, description="Most header fields in one request (431).")
    header_timeout_s: float = Field(
        10.0, gt=0, description="Time for a request's head to arrive, from the connection (or "
                                "the request's first byte); then 408 and the connection closes.")
    body_timeout_s: float = Field(
        30.0, gt=0, description="Time for a whole request body to arrive once it is read; "
                                "then 408 request_timeout.")
    keepalive_timeout_s: int = Field(
        5, gt=0, description="An idle keep-alive connection is closed after this many seconds.")
    metrics_public: bool = Field(
        False, description="Serve GET /metrics without a key (for a scraper on a private "
                           "network). Default: the master key or a key with role 'metrics'.")
    capture_content: bool = Field(True, description="Store request messages and outputs.")
    trace_queue_size: int = 20_000
    trace_batch_size: int = 500
    trace_flush_interval_s: float = 0.25
    trace_hold_max: int = Field(
        20_000, ge=1, description="Traces kept in memory when neither the store nor the "
                                  "journal (KEEL_DATA_DIR/spill) can take them; past this "
                                  "the gateway refuses requests (503) rather than answer "
                                  "untraced.")
    trace_journal: bool = Field(
        True, description="Append every finished trace to a journal under "
                          "KEEL_DATA_DIR/spill before its answer is sent, so a killed process "
                          "loses no trace. Off: a crash loses the traces not yet stored.")
    trace_journal_fsync_s: float | None = Field(
        None, gt=0, description="fsync the trace journal at most this often (seconds). "
                                "Unset: no fsync; the journal survives a killed process "
                                "but not a machine crash.")
    refresh_interval_s: float = Field(2.0, description="How often keys are re-read from the store.")
    feedback_wait_s: float = Field(
        3.0, ge=0, le=60, description="How long POST /api/feedback and /api/outcomes wait for "
        "a trace they name to be stored (answered a moment ago, here or on another replica) "
        "before a 404; keep it above KEEL_TRACE_FLUSH_INTERVAL_S.")
    otlp_endpoint: str | None = Field(
        None, description="Export every stored trace as an OpenTelemetry span (OTLP/HTTP "
                          "protobuf) to this collector, e.g. http://otel-collector:4318; spans "
                          "are POSTed to {endpoint}/v1/traces. Unset: no export.")
    otlp_headers: str | None = Field(
        None, description="Extra headers on every OTLP export request, 'k=v,k2=v2' (values "
                          "may be URL-encoded), e.g. 'authorization=Bearer%20TOKEN'.")
    otlp_capture_content: bool = Field(
        False, description="Also export message content (gen_ai.input.messages / "
                           "gen_ai.output.messages); off by default.")
    audit_key: str | None = Field(
        None, description="Secret that signs audit checkpoints (HMAC-SHA256); also needed "
                          "to check their signatures. Unset: checkpoints are unsigned hashes "
                          "and `keel audit verify` says so.")
    audit_checkpoint_every: int = Field(
        100, ge=1, description="Audit entries between automatic checkpoints.")
    audit_witness: str | None = Field(
        None, description="Where each audit checkpoint is also published, outside the "
                          "database: file paths (appended, one JSON line each) and "
                          "http(s):// URLs (POSTed), comma-separated; `keel audit verify` "
                          "checks the log against the files. Unset: "
                          "<data_dir>/audit-witness.jsonl; 'none': nowhere.")
    log_level: str = Field(
        "warning", description="debug, info, warning or error. At debug on SQLite the "
                               "database driver logs every statement with its values: trace "
                               "content (prompts and answers) as the feature's capture policy "
                               "stores it, so all of it unless capture is redacted or none. "
                               "Configured secrets are redacted from every log line.")

    @model_validator(mode="before")
    @classmethod
    def _locate(cls, data: Any) -> Any:
        """The config file and data directory not given are found by keel.locations."""
        if not isinstance(data, dict) or (data.get("config") and data.get("data_dir")):
            return data
        found = locate(data.get("config") or None, data.get("data_dir") or None,
                       read_settings=False)  # the environment is in data already
        return {**data, "config": str(found.config or DEFAULT_CONFIG_FILE),
                "data_dir": str(found.data_dir)}

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir) / 'keel.db'}"

    def describe_store(self) -> str:
        """The database for people: its file, or its host and name (never a password)."""
        url = self.resolved_database_url()
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            return f"SQLite {path if path == ':memory:' else os.path.abspath(path)}"
        return "PostgreSQL " + url.rsplit("@", 1)[-1].split("://", 1)[-1]


# --- YAML config ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencySpec(_Strict):
    """Mock latency: a log-normal distribution described by its median and p99, in ms."""

    p50_ms: float = Field(0.0, ge=0)
    p99_ms: float | None = Field(None, ge=0)
    ttft_ms: float | None = Field(None, ge=0, description="Delay before the first streamed chunk.")


class ErrorRates(_Strict):
    """Mock failure rates, each a probability in [0, 1]."""

    rate_limit: float = Field(0.0, ge=0, le=1)
    server_error: float = Field(0.0, ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)


class ProviderConfig(_Strict):
    name: str
    kind: Literal["openai", "anthropic", "gemini", "mock"]
    base_url: str | None = None
    api_key: str | None = None
    api_version: str | None = Field(
        None, description="Azure OpenAI api-version; when set, base_url is the Azure endpoint."
    )
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: list[str] = Field(
        default_factory=list,
        description="Names under headers: whose values are secrets, like the api_key "
                    "(those named with auth, key, token, secret, password or cookie, or ending "
                    "in pwd, passwd, sig, signature, credentials or session_id, already are): "
                    "never in what keel sends to clients, stores or logs.")
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_connections: int = Field(256, gt=0)
    # mock only
    latency: LatencySpec = Field(default_factory=LatencySpec)
    errors: ErrorRates = Field(default_factory=ErrorRates)
    output_tokens: int = Field(48, gt=0, description="Mock: typical answer length in tokens.")
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v or not v.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError("use letters, digits, '-', '_' or '.'")
        return v

    @model_validator(mode="after")
    def _secret_headers_known(self) -> ProviderConfig:
        names = {h.lower() for h in self.headers}
        for i, h in enumerate(self.secret_headers):
            if h.lower() not in names:
                raise _KeyProblem(f"secret_headers[{i}]", f"'{h}' is not one of the headers",
                                  "list names that appear under headers:")
        return self


class PriceTierSpec(_Strict):
    """Rates for a whole request whose input exceeds ``above_input_tokens``; unset rates
    keep the model's base rates."""

    above_input_tokens: int = Field(gt=0)
    input_per_mtok: float | None = Field(None, ge=0)
    output_per_mtok: float | None = Field(None, ge=0)
    cached_input_per_mtok: float | None = Field(None, ge=0)
    cache_write_per_mtok: float | None = Field(None, ge=0)
    reasoning_per_mtok: float | None = Field(None, ge=0)


class PriceSpec(_Strict):
    """USD per million tokens. Cached input and cache writes default to the input price,
    reasoning tokens (counted in the output) to the output price."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    cached_input_per_mtok: float | None = Field(None, ge=0)
    cache_write_per_mtok: float | None = Field(None, ge=0)
    reasoning_per_mtok: float | None = Field(None, ge=0)
    per_request_usd: float = Field(0.0, ge=0, description="A fixed fee per request.")
    tiers: list[PriceTierSpec] = Field(default_factory=list)

    @field_validator("tiers")
    @classmethod
    def _distinct_tiers(cls, v: list[PriceTierSpec]) -> list[PriceTierSpec]:
        seen = [t.above_input_tokens for t in v]
        if len(set(seen)) != len(seen):
            raise ValueError("two tiers have the same above_input_tokens; give each tier its "
                             "own threshold")
        return v

    def to_price(self) -> Price:
        return Price(
            input_per_mtok=self.input_per_mtok, output_per_mtok=self.output_per_mtok,
            cached_input_per_mtok=self.cached_input_per_mtok,
            cache_write_per_mtok=self.cache_write_per_mtok,
            reasoning_per_mtok=self.reasoning_per_mtok, per_request_usd=self.per_request_usd,
            tiers=tuple(PriceTier(**t.model_dump()) for t in self.tiers))


class DeploymentConfig(_Strict):
    """One place a model is served from (a provider account, key or region)."""

    name: str | None = Field(None, description="Label in traces; default provider/upstream.")
    provider: str
    upstream: str | None = None
    weight: float = Field(1.0, gt=0)


class BreakerSpec(_Strict):
    """Circuit breaker per deployment: open after `failures` consecutive failures, or when
    the failure rate over `window_s` reaches `failure_rate` (with at least `min_requests`);
    stay open `cooldown_s`, then let one probe through (half-open).

    `enabled` defaults to on where a request has somewhere else to go: a model with several
    deployments, or one that a route can fall back from. A lone deployment keeps reporting
    its real errors instead of failing fast."""

    enabled: bool | None = None
    failures: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    window_s: float = Field(60.0, gt=0)
    min_requests: int = Field(20, ge=1)
    cooldown_s: float = Field(30.0, gt=0)


class ModelConfig(_Strict):
    name: str = Field(description="The name clients send as 'model'.")
    provider: str | None = None
    upstream: str | None = Field(None, description="The name the provider expects.")
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    balance: Literal["weighted", "least-busy", "latency"] = "weighted"
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)
    kind: Literal["chat", "embedding"] = "chat"
    price: PriceSpec | None = Field(
        None, description="Unset: keel's built-in price for the upstream model, if it has one "
                          "(keel.costs.prices); set (even to zeros) to override it.")
    max_output_tokens: int = Field(
        4096, gt=0, description="Worst-case answer length, for budget reservations.")

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.name

    def all_deployments(self) -> list[DeploymentConfig]:
        """The deployments; ``provider``/``upstream`` at the top level is shorthand for one."""
        if self.deployments:
            return [d if d.upstream else d.model_copy(update={"upstream": self.upstream_name})
                    for d in self.deployments]
        return [DeploymentConfig(provider=self.provider or "", upstream=self.upstream_name)]


FailureClass = Literal["rate_limit", "server_error", "timeout", "connection", "content_filter"]
FAILURE_CLASSES: tuple[FailureClass, ...] = ("rate_limit", "server_error", "timeout", "connection",
                                    "content_filter")


class TargetSpec(_Strict):
    model: str
    weight: float = Field(1.0, gt=0)


class RetrySpec(_Strict):
    attempts: int = Field(0, ge=0, le=10, description="Retries per model after the first try.")
    backoff_ms: float = Field(200.0, ge=0)
    max_backoff_ms: float = Field(5000.0, ge=0)


class CacheSpec(_Strict):
    mode: Literal["exact", "semantic"] = "exact"
    ttl_s: float = Field(3600.0, gt=0)
    threshold: float = Field(0.95, gt=0, le=1, description="Semantic: cosine similarity.")
    embedding_model: str | None = Field(None, description="Semantic: the embedding model.")
    multi_turn: bool = Field(False, description="Semantic: also cache multi-turn/tool traffic.")
    scope: Literal["team", "key", "shared"] = Field(
        "team", description="Who may be served an answer cached for someone else.")


class RouteConfig(_Strict):
    name: str = Field(description="Clients send it as 'model'.")
    features: list[str] = Field(default_factory=list,
                                description="Requests of these features use this route.")
    targets: list[TargetSpec]
    sticky: Literal["user", "session"] | None = None
    fallbacks: list[str] = Field(default_factory=list)
    fallback_on: list[FailureClass] = Field(default_factory=lambda: list(FAILURE_CLASSES))
    retries: RetrySpec = Field(default_factory=RetrySpec)
    timeout_s: float | None = Field(None, gt=0, description="Total time for all attempts.")
    attempt_timeout_s: float | None = Field(None, gt=0, description="Time for one attempt.")
    cache: CacheSpec | None = None


Scope = Literal["key", "team", "feature", "model"]


class LimitConfig(_Strict):
    scope: Scope
    name: str = Field(description="The key id, team, feature or model name; '*' for each.")
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)


class BudgetConfig(_Strict):
    scope: Literal["key", "team", "feature"]
    name: str
    usd: float = Field(gt=0)
    period: Literal["daily", "weekly", "monthly", "total"] = "monthly"
    soft_pct: float | None = Field(80.0, gt=0, le=100)
    on_store_error: Literal["closed", "open"] = Field(
        "closed", description="If Redis is unreachable (or a counter it lost cannot be "
        "rebuilt from the store): refuse (closed) or admit (open).")


class ScheduledSuite(_Strict):
    suite: str = Field(description="Suite file; a relative path is relative to the config file.")
    at: str = Field("03:00", description="Time of day (UTC, HH:MM) of the daily run.")
    baseline: str | None = Field(
        None, description="Gate against this label (or prompt ref); without it the suite's "
                          "own thresholds (and gate.baseline, if set) decide.")

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        hh, sep, mm = v.partition(":")
        # ASCII digits only: str.isdigit also takes '²' (which int() refuses) and '٠٣'.
        if not (sep and 1 <= len(hh) <= 2 and len(mm) == 2 and f"{hh}{mm}".isascii()
                and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ValueError(f"'{v}' is not a time of day; use HH:MM in UTC, e.g. '03:00'")
        return f"{int(hh):02d}:{mm}"


class EvalsConfig(_Strict):
    schedule: list[ScheduledSuite] = Field(default_factory=list)
    check_interval_s: float = Field(60.0, gt=0, description="How often the schedule is checked.")


class RetentionSpec(_Strict):
    content_days: float | None = Field(
        None, gt=0, description="Days request/response content is kept (None: forever).")
    rows_days: float | None = Field(
        None, gt=0, description="Days trace rows are kept (None: forever); rollups stay.")


class FeatureConfig(_Strict):
    name: str
    value_unit: str | None = Field(
        None, description="The business outcome (by name) that measures this feature's "
                          "value, e.g. ticket_resolved; cost per value unit divides by it.")
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    capture: Literal["full", "redacted", "none"] = Field(
        "full", description="What of request/response content is stored.")


class PolicyReview(_Strict):
    when: str | bool = Field(
        True, description="Which answers are held: true (every one), false (only those a "
                          "rule with action review holds), or a condition on the request and "
                          "the findings, e.g. \"feature == 'contracts' or flagged\".")
    mode: Literal["wait", "async"] = Field(
        "wait", description="wait: the client's request waits for the decision (up to "
                            "timeout_s, at most 600 s); async: the client gets 202 and a "
                            "review id to poll.")
    timeout_s: float = Field(600.0, gt=0, le=7 * 86400,
                             description="With no decision by then, the answer is rejected.")

    @model_validator(mode="after")
    def _wait_cap(self) -> PolicyReview:
        if self.mode == "wait" and self.timeout_s > 600:
            raise _KeyProblem("timeout_s", f"wait mode holds the client's request open, at "
                              f"most 600 s (got {self.timeout_s:g})",
                              "lower timeout_s, or use mode: async (202 and a review id)")
        return self


class PolicyConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    features: list[str] = Field(default_factory=list, description=(
        "The features it governs; '*' for every feature no other policy names."))
    routes: list[str] = Field(default_factory=list,
                              description="Routes it governs (when no policy names the feature).")
    input: list[dict[str, Any]] = Field(default_factory=list, description=(
        "Scanners on the request: {scanner: TYPE, action: allow|flag|redact|block|review, "
        "...options}"))
    output: list[dict[str, Any]] = Field(default_factory=list,
                                         description="Scanners on the answer, as input:.")
    review: PolicyReview | None = None
    safe_reply: str | None = Field(
        None, description="Answer a blocked request with this text (a normal completion) "
                          "instead of a policy_blocked error.")
    canary: bool = Field(False, description="Plant a canary token in the system prompt; "
                                            "pair with an output canary scanner.")
    on_scanner_error: Literal["block", "allow"] = Field(
        "block", description="What a scanner that cannot scan means (block: fail closed).")


class KeelConfig(_Strict):
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    limits: list[LimitConfig] = Field(default_factory=list)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    evals: EvalsConfig = Field(default_factory=EvalsConfig)
    features: list[FeatureConfig] = Field(default_factory=list)
    policies: list[PolicyConfig] = Field(default_factory=list)
    # where relative paths in the config (a policy's schema file) are found: the config
    # file's directory, else the working directory
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        return self._base_dir or Path.cwd()

    def feature(self, name: str) -> FeatureConfig | None:
        return next((f for f in self.features if f.name == name), None)

    @model_validator(mode="after")
    def _references(self) -> KeelConfig:
        """Names that must match across sections; every mismatch is reported at once."""
        problems: list[_KeyProblem] = []
        seen: set[str] = set()
        for i, p in enumerate(self.providers):
            if p.name in seen:
                problems.append(_KeyProblem(
                    f"providers[{i}].name", f"provider '{p.name}' is declared twice",
                    "give each provider a unique name"))
            seen.add(p.name)
            if p.kind == "openai" and not p.base_url:
                problems.append(_KeyProblem(
                    f"providers[{i}].base_url", "an openai provider needs base_url",
                    "set it, e.g. https://api.openai.com/v1"))
        known = ", ".join(sorted(seen)) or "none declared"
        names: set[str] = set()
        for i, m in enumerate(self.models):
            if m.provider is None and not m.deployments:
                problems.append(_KeyProblem(f"models[{i}].provider", "required key is missing",
                                            "name the provider (or list deployments:)"))
            if m.provider is not None and m.deployments:
                problems.append(_KeyProblem(
                    f"models[{i}].deployments", "both provider and deployments",
                    "use provider: for one deployment or deployments: for several"))
            if m.provider is not None and m.provider not in seen:
                problems.append(_KeyProblem(
                    f"models[{i}].provider", f"unknown provider '{m.provider}'",
                    f"use one of the names under providers: ({known})"))
            for j, d in enumerate(m.deployments):
                if d.provider not in seen:
                    problems.append(_KeyProblem(f"models[{i}].deployments[{j}].provider",
                                                f"unknown provider '{d.provider}'",
                                                f"use one of the names under providers: ({known})"))
            if m.name in names:
                problems.append(_KeyProblem(
                    f"models[{i}].name", f"model '{m.name}' is declared twice",
                    "give each model a unique name"))
            names.add(m.name)
        self._check_routes(names, problems)
        if problems:
            raise _KeyProblems(problems)
        return self

    def _check_routes(self, models: set[str], problems: list[_KeyProblem]) -> None:
        known = ", ".join(sorted(models)) or "none declared"
        route_names: set[str] = set()
        chat = {m.name for m in self.models if m.kind == "chat"}
        embed = {m.name for m in self.models if m.kind == "embedding"}
        for i, r in enumerate(self.routes):
            where = f"routes[{i}]"
            if r.name in route_names:
                problems.append(_KeyProblem(f"{where}.name", f"route '{r.name}' is declared twice",
                                            "give each route a unique name"))
            if r.name in models:
                problems.append(_KeyProblem(
                    f"{where}.name", f"route '{r.name}' has a model's name",
                    "rename the route or the model: clients send either as 'model'"))
            route_names.add(r.name)
            if not r.targets:
                problems.append(_KeyProblem(f"{where}.targets", "a route needs at least one target",
                                            "list targets: [{model: NAME, weight: N}]"))
            for j, t in enumerate(r.targets):
                if t.model not in chat:
                    problems.append(_KeyProblem(
                        f"{where}.targets[{j}].model", f"unknown chat model '{t.model}'",
                        f"use one of the chat models under models: ({known})"))
            for j, f in enumerate(r.fallbacks):
                if f not in chat:
                    problems.append(_KeyProblem(
                        f"{where}.fallbacks[{j}]", f"unknown chat model '{f}'",
                        f"use one of the chat models under models: ({known})"))
            if r.cache and r.cache.mode == "semantic" and r.cache.embedding_model not in embed:
                problems.append(_KeyProblem(f"{where}.cache.embedding_model",
                                            "semantic caching needs an embedding model",
                                            "name one of the embedding models under models:"))
        for i, lim in enumerate(self.limits):
            if lim.rpm is None and lim.tpm is None:
                problems.append(_KeyProblem(f"limits[{i}]", "a limit needs rpm, tpm or both",
                                            "add rpm: N and/or tpm: N"))
        self._check_policies(route_names, problems)

    def _check_policies(self, routes: set[str], problems: list[_KeyProblem]) -> None:
        names: set[str] = set()
        owner: dict[str, str] = {}
        for i, p in enumerate(self.policies):
            where = f"policies[{i}]"
            if p.name in names:
                problems.append(_KeyProblem(f"{where}.name", f"policy '{p.name}' is declared twice",
                                            "give each policy a unique name"))
            names.add(p.name)
            if not p.features and not p.routes:
                problems.append(_KeyProblem(f"{where}.features", "the policy governs nothing",
                                            "list features: [NAME, ...] (or ['*']) and/or routes:"))
            for f in p.features:
                if f in owner:
                    problems.append(_KeyProblem(
                        f"{where}.features",
                        f"feature '{f}' is already governed by policy '{owner[f]}'",
                        "a feature has one policy; merge them"))
                owner[f] = p.name
            for j, r in enumerate(p.routes):
                if r not in routes:
                    problems.append(_KeyProblem(f"{where}.routes[{j}]", f"unknown route '{r}'",
                                                "use one of the names under routes:"))
                if f"route:{r}" in owner:
                    problems.append(_KeyProblem(
                        f"{where}.routes[{j}]",
                        f"route '{r}' is already governed by policy '{owner['route:' + r]}'",
                        "a route has one policy"))
                owner[f"route:{r}"] = p.name

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)

    def provider(self, name: str) -> ProviderConfig:
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(name)


class _KeyProblem(ValueError):
    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.key, self.problem, self.fix = key, problem, fix


class _KeyProblems(ValueError):
    """Several problems found by one validator, each reported on its own."""

    def __init__(self, problems: list[_KeyProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def default_config() -> KeelConfig:
    """What runs with no config file: the offline mock provider and two models."""
    return KeelConfig(
        providers=[ProviderConfig(name="mock", kind="mock", latency=LatencySpec(p50_ms=0.0))],
        models=[
            ModelConfig(name="mock", provider="mock",
                        price=PriceSpec(input_per_mtok=0.15, output_per_mtok=0.60,
                                        cached_input_per_mtok=0.075)),
            ModelConfig(name="mock-embedding", provider="mock", kind="embedding",
                        price=PriceSpec(input_per_mtok=0.02)),
        ],
    )


def _resolve_env(value: Any, where: str, missing: dict[str, str]) -> Any:
    """Replace ``env:NAME`` strings with the variable's value, recursively; a variable that is
    not set is noted in ``missing`` (key path -> name) and left empty."""
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            missing[where] = name
            return ""
        return os.environ[name]
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{where}.{k}" if where else k, missing)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{where}[{i}]", missing) for i, v in enumerate(value)]
    return value


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(data: Any, path: str) -> KeelConfig:
    """Validate a parsed config; every problem found is in the ``ConfigError``, one a line."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must be a mapping with keys providers: and models:")
    missing: dict[str, str] = {}
    data = _resolve_env(data, "", missing) if data else data
    lines = [f"{path}: {where}: environment variable {name} is not set; export {name}=... "
             "before starting keel, or change the value" for where, name in missing.items()]
    try:
        config = KeelConfig.model_validate(data)
    except ValidationError as exc:
        found = validation_messages(exc, path, KeelConfig) + _references_despite(exc, data, path)
        lines += [line for line in found
                  if not any(line.startswith(f"{path}: {where}:") for where in missing)]
        raise ConfigError("\n".join(lines)) from None
    if lines:
        raise ConfigError("\n".join(lines))
    config._base_dir = Path(path).parent
    return config


def _references_despite(exc: ValidationError, data: dict[str, Any], path: str) -> list[str]:
    """The cross-reference problems (unknown providers, models, routes) of a config whose
    only other problems are unknown keys: checked again without those keys, so that one
    pass reports both."""
    errors = exc.errors()
    if not all(e["type"] == "extra_forbidden" for e in errors):
        return []  # a bad value: what depends on it cannot be checked
    pruned = copy.deepcopy(data)
    for e in errors:
        *parents, key = e["loc"]
        node: Any = pruned
        for part in parents:
            if isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return []
        if not isinstance(node, dict):
            return []
        node.pop(key, None)
    try:
        KeelConfig.model_validate(pruned)
    except ValidationError as again:
        return [line for line in validation_messages(again, path, KeelConfig)
                if "unknown key" not in line]
    return []


def _unwrap(annotation: Any) -> Any:
    """The model inside ``X | None``, ``list[X]`` and ``dict[str, X]`` annotations."""
    while True:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        elif origin in (list, tuple, set, frozenset) and args:
            annotation = args[0]
        else:
            return annotation


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` (a pydantic error location) under ``model``; [] if that
    is not a model's mapping."""
    t: Any = model
    for part in loc:
        t = _unwrap(t)
        if get_origin(t) is dict:  # part is one of the mapping's keys
            t = get_args(t)[1] if get_args(t) else Any
            continue
        if isinstance(part, int):
            continue
        if not (isinstance(t, type) and issubclass(t, BaseModel)) or part not in t.model_fields:
            return []
        t = t.model_fields[part].annotation
    t = _unwrap(t)
    return list(t.model_fields) if isinstance(t, type) and issubclass(t, BaseModel) else []


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    if allowed:
        return f"unknown key '{key}'; the keys here are: {', '.join(allowed)}"
    return f"unknown key '{key}'; check the spelling against the reference in the README"


def validation_messages(exc: ValidationError, path: str,
                        model: type[BaseModel] | None = None) -> list[str]:
    """Every problem of a pydantic validation error, each as ``FILE: key.path: what; fix``.
    With ``model`` (the one validated), a misspelt key gets the closest allowed one."""
    out: list[str] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = _loc(loc)
        ctx_err = (err.get("ctx") or {}).get("error")
        problems = (ctx_err.problems if isinstance(ctx_err, _KeyProblems)
                    else [ctx_err] if isinstance(ctx_err, _KeyProblem) else [])
        for p in problems:  # keys are relative to the model that raised it
            out.append(f"{path}: {f'{where}.{p.key}' if where else p.key}: {p.problem}; {p.fix}")
        if problems:
            continue
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(str(loc[-1]), _keys_at(model, loc[:-1]) if model else [])
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
            choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            close = difflib.get_close_matches(str(err.get("input")), choices, n=1, cutoff=0.6)
            if close:
                msg += f"; did you mean '{close[0]}'?"
        elif err["type"] == "missing":
            msg = "required key is missing; add it"
        line = f"{path}: {where or '(top level)'}: {msg}"
        if line not in out:
            out.append(line)
    return out


def validation_message(exc: ValidationError, path: str,
                       model: type[BaseModel] | None = None) -> str:
    """All the problems of a pydantic validation error, one a line (validation_messages)."""
    return "\n".join(validation_messages(exc, path, model))


def config_warnings(config: KeelConfig) -> list[str]:
    """What is valid but almost certainly not meant."""
    out = []
    if not config.models:
        out.append("no models are configured, so keel would answer every request with "
                   "model_not_found; add models: (see the config reference in the README)")
    return out


def load_config(path: str | os.PathLike[str] | None, *, required: bool = False) -> KeelConfig:
    """Load and validate the YAML config; with no file (and not required), the mock default.
    ``None``: the file keel.locations finds."""
    if path is None:
        found = locate().config
        if found is None:
            return default_config()
        path = found
    p = Path(path)
    if not p.exists():
        if required:
            raise ConfigError(f"{p}: config file not found; create it or pass --config PATH")
        return default_config()
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data, str(p))
