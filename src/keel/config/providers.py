"""The providers: and models: sections: provider accounts (and the mock's behaviour),
models with their deployments, prices and circuit breakers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from keel.config.base import _KeyProblem, _Strict
from keel.types import Price, PriceTier

# The kinds of keel's own provider adapters (keel.gateway.providers registers them under these
# names) and the entry point group through which a plugin adds one: named here so that the
# kinds of a config can be checked without importing an adapter (keel config check).
BUILTIN_PROVIDER_KINDS = ("anthropic", "gemini", "mock", "openai")
PROVIDER_GROUP = "keel.providers"


def checkable_providers(
    entries: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(where, kind, options)`` of each provider entry (``providers:`` as loaded, or as
    written in a file the loader refused) whose kind and options can be checked: an entry
    whose kind is not a string (or still an ``env:`` reference) or whose options are not a
    mapping is the loader's to report, and skipped. ``where`` is ``providers[i]``."""
    for i, entry in enumerate(entries):
        kind, options = entry.get("kind"), entry.get("options") or {}
        if isinstance(kind, str) and not kind.startswith("env:") and isinstance(options, dict):
            yield f"providers[{i}]", kind, options


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
    kind: str = Field(
        description="The provider's wire protocol: a built-in (openai, anthropic, gemini, "
                    "mock) or a plugin's kind (the keel.providers entry point group). Checked "
                    "when keel is composed from the config (keel serve, keel config check), "
                    "where the installed plugins are known.")
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
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="A plugin provider's own settings, handed to it as config.options; the "
                    "provider names the keys it takes. Built-in kinds take none.")

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
