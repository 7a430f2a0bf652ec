"""The keel variants of the benchmark: the plain `keel` target plus one feature turned on.

Each variant is its own `keel serve` process (own data dir and SQLite store, pinned like
`keel`) whose YAML config is keel's plain config plus the snippet below. Every keel target,
the plain one included, uses a virtual key bound to the feature `bench`
(`keel keys create --team bench --feature bench`), so the limits and budgets below match
every request and the plain `keel` is directly comparable.

The Redis variants set KEEL_REDIS_URL and a KEEL_REDIS_PREFIX unique to the run; their keys
are deleted at the end of the run (`redis_cleanup`). Nothing here starts a keel process.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

FEATURE = "bench"
ROUTE = "bench-route"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# High enough never to refuse during a run: a refusal (429) counts as an error.
_LIMIT = (f"limits:\n"
          f"  - {{scope: feature, name: {FEATURE}, rpm: 100000000, tpm: 100000000000}}\n")
_BUDGET = (f"budgets:\n"
           f"  - {{scope: feature, name: {FEATURE}, usd: 1000000000, period: monthly}}\n")


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    yaml: str  # appended to keel's plain config (after its `models:` list)
    model: str | None = None  # what clients send as "model" (None: the plain bench model)
    redis: bool = False
    env: tuple[tuple[str, str], ...] = ()  # extra KEEL_* settings of this variant


def route_yaml(model: str) -> str:
    """Two more models on the same provider (a second target and a fallback) and a route."""
    extra = "".join(
        f"  - name: {name}\n"
        "    provider: upstream\n"
        "    upstream: gpt-4o-mini\n"
        "    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}\n"
        for name in (f"{model}-b", f"{model}-fallback"))
    return extra + (
        "routes:\n"
        f"  - name: {ROUTE}\n"
        f"    targets: [{{model: {model}, weight: 3}}, {{model: {model}-b, weight: 1}}]\n"
        f"    fallbacks: [{model}-fallback]\n"
        "    retries: {attempts: 2, backoff_ms: 100, max_backoff_ms: 1000}\n")


def variants(model: str) -> list[Variant]:
    return [
        Variant("keel-nojournal",
                "keel with the crash-safe trace journal off (KEEL_TRACE_JOURNAL=false): "
                "what the journal costs, measured against `keel` in the same round",
                yaml="", env=(("KEEL_TRACE_JOURNAL", "false"),)),
        Variant("keel+route",
                f"keel + a route `{ROUTE}` (sent as the model): 2 weighted targets (3:1, two "
                "models on the same `openai` provider), a fallback model, 2 retries; no faults, "
                "so neither is taken", yaml=route_yaml(model), model=ROUTE),
        Variant("keel+ratelimit-mem",
                f"keel + a rate limit on feature `{FEATURE}` (rpm 1e8, tpm 1e11), in-process",
                yaml=_LIMIT),
        Variant("keel+budget-mem",
                f"keel + a monthly budget on feature `{FEATURE}` (1e9 USD), in-process",
                yaml=_BUDGET),
        Variant("keel+ratelimit-redis",
                "the same rate limit, counters in Redis (KEEL_REDIS_URL)", yaml=_LIMIT,
                redis=True),
        Variant("keel+budget-redis",
                "the same budget, counters and reservations in Redis (KEEL_REDIS_URL)",
                yaml=_BUDGET, redis=True),
    ]


VARIANT_NAMES = [v.name for v in variants("m")]


def run_prefix() -> str:
    """A Redis key prefix unique to this run; each Redis variant appends its own name."""
    return f"keel-bench:{secrets.token_hex(4)}:"


def redis_ping(url: str) -> str | None:
    """None if Redis at `url` answers PING within 2 s, else why not."""
    try:
        import redis
    except ImportError as exc:
        return f"the redis package is not importable: {exc}"
    try:
        with contextlib.closing(redis.Redis.from_url(url, socket_timeout=2,
                                                     socket_connect_timeout=2)) as r:
            if not r.ping():
                return f"Redis at {url} did not answer PING"
    except Exception as exc:  # noqa: BLE001
        return f"Redis at {url} did not answer PING: {type(exc).__name__}: {exc}"
    return None


def redis_cleanup(url: str, prefix: str) -> int:
    """Delete every key under `prefix`; returns how many were deleted."""
    import redis
    n = 0
    with contextlib.closing(redis.Redis.from_url(url, socket_timeout=5)) as r:
        batch: list[bytes] = []
        for k in r.scan_iter(match=prefix + "*", count=1000):
            batch.append(k)
            if len(batch) >= 500:
                n += int(r.delete(*batch))
                batch.clear()
        if batch:
            n += int(r.delete(*batch))
    return n


def redis_key_count(url: str, prefix: str) -> int:
    import redis
    with contextlib.closing(redis.Redis.from_url(url, socket_timeout=5)) as r:
        return sum(1 for _ in r.scan_iter(match=prefix + "*", count=1000))
