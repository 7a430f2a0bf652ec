"""``ResponseCache``: exact answers in memory or Redis, semantic answers in memory.

Exact entries: with Redis, ``SET <prefix>cache:<key> <orjson> PX <ttl>`` and ``GET``, so
an answer stored by one replica is served by all; without Redis, an LRU in this process
bounded by ``max_entries``. Semantic entries always live in this process (see
``keel.cache.semantic``).

The cache is an optimisation, never a dependency: a Redis error or timeout makes a read a
miss and a write a no-op, logged at WARNING at most once per ``warn_interval_s``. Each
Redis call is bounded by ``op_timeout_s`` (the client's own retries and backoff included),
and after a failure Redis is not tried again for ``retry_after_s``, so an outage costs
requests nothing but their cache hits.
Completions are stored serialised, so a caller mutating an answer it got cannot change
what the next caller gets.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from keel.cache import keys
from keel.cache.semantic import SemanticIndex
from keel.config import CacheSpec, extras
from keel.types import JSON

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("keel.cache")


class _ThrottledWarning:
    """Log a warning at most once per interval; count what was held back."""

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        self.interval_s, self._clock = interval_s, clock
        self._next = -math.inf
        self.suppressed = 0

    def __call__(self, msg: str, *args: object) -> None:
        now = self._clock()
        if now < self._next:
            self.suppressed += 1
            return
        if self.suppressed:
            msg += " (%d similar warnings suppressed)"
            args = (*args, self.suppressed)
        log.warning(msg, *args)
        self._next, self.suppressed = now + self.interval_s, 0


class _LRU:
    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self.max_entries, self._clock = max_entries, clock
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[1]

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        if self.max_entries <= 0:
            return
        self._data[key] = (self._clock() + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: int = 0   # Redis failures and unreadable entries
    skipped: int = 0  # Redis calls not made because Redis failed moments ago


class ResponseCache:
    """The response cache. Never raises into the request path on a backend failure."""

    def __init__(self, redis: Redis | None, *, prefix: str = "keel:", max_entries: int = 10_000,
                 semantic_max_entries: int | None = None,
                 close_redis: bool = False, op_timeout_s: float | None = 0.5,
                 retry_after_s: float = 2.0, warn_interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``redis``: the client (short socket timeouts are the creator's business) or None
        for the in-process LRU. ``max_entries`` bounds the in-process exact LRU and, unless
        ``semantic_max_entries`` is given, the semantic index. ``close_redis``: whether
        ``aclose`` closes that client (by default its creator does). ``op_timeout_s``: the
        longest one Redis call may take, the client's retries included.
        ``retry_after_s``: after a Redis failure, how long to treat Redis as absent.
        ``clock``: monotonic seconds, for expiry, ``retry_after_s`` and the warning rate."""
        self._redis = redis
        self._close_redis = close_redis
        self._op_timeout_s = op_timeout_s
        self._retry_after_s = retry_after_s
        self._down_until = -math.inf
        self._clock = clock
        self._prefix = prefix + "cache:"
        self._memory = _LRU(max_entries, clock)
        self._semantic = SemanticIndex(
            max_entries if semantic_max_entries is None else semantic_max_entries, clock)
        self._warn = _ThrottledWarning(warn_interval_s, clock)
        self.stats = CacheStats()

    @property
    def backend(self) -> str:
        return "memory" if self._redis is None else "redis"

    # --- keys and eligibility (pure; see keel.cache.keys) -------------------------------------

    @staticmethod
    def exact_key(namespace: str, body: JSON) -> str:
        return keys.exact_key(namespace, body)

    @staticmethod
    def semantic_params_key(namespace: str, body: JSON) -> str:
        return keys.semantic_params_key(namespace, body)

    @staticmethod
    def semantic_eligible(body: JSON, spec: CacheSpec) -> bool:
        return keys.semantic_eligible(body, spec)

    @staticmethod
    def semantic_text(body: JSON) -> str:
        return keys.semantic_text(body)

    # --- exact ---------------------------------------------------------------------------------

    async def get(self, key: str) -> JSON | None:
        """The object stored under ``key``, or None (a miss, or the backend failed)."""
        redis = self._redis
        if redis is None:
            raw: Any = self._memory.get(key)
        else:
            ok, raw = await self._call("read", lambda: redis.get(self._prefix + key))
            if not ok:
                self.stats.misses += 1
                return None
        value = self._decode(raw) if raw is not None else None
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    async def put(self, key: str, completion: JSON, ttl_s: float) -> None:
        """Store ``completion`` (any JSON object: a ``chat.completion``, or the gateway's
        wrapper around one) for ``ttl_s`` seconds. Whether an answer may be replayed is the
        caller's decision (``keys.is_cacheable`` helps); a backend failure skips the write
        (logged)."""
        data = self._encode(completion, ttl_s)
        if data is None:
            return
        redis = self._redis
        if redis is None:
            self._memory.put(key, data, ttl_s)
        else:
            px = max(1, math.ceil(ttl_s * 1000))
            ok, _ = await self._call("write", lambda: redis.set(self._prefix + key, data, px=px))
            if not ok:
                return
        self.stats.writes += 1

    # --- semantic (per replica) ----------------------------------------------------------------

    async def semantic_get(self, namespace: str, params_key: str, vector: list[float],
                           threshold: float) -> tuple[JSON, float] | None:
        """(completion, similarity) of the most similar live entry stored under the same
        namespace and params_key, if its cosine similarity is at least ``threshold``."""
        found = self._semantic.search((namespace, params_key), vector, threshold)
        value = self._decode(found[0]) if found is not None else None
        if found is None or value is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return value, found[1]

    async def semantic_put(self, namespace: str, params_key: str, vector: list[float],
                           completion: JSON, ttl_s: float) -> None:
        data = self._encode(completion, ttl_s)
        if data is not None and self._semantic.add((namespace, params_key), vector, data, ttl_s):
            self.stats.writes += 1

    async def aclose(self) -> None:
        self._memory.clear()
        self._semantic.clear()
        if self._redis is not None and self._close_redis:
            try:
                await self._redis.aclose()
            except (extras.RedisError, OSError) as exc:
                self._failed("close", exc)

    # --- helpers -------------------------------------------------------------------------------

    async def _call(self, op: str, call: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """(True, result) or, when Redis failed now or moments ago, (False, None)."""
        if self._clock() < self._down_until:
            self.stats.skipped += 1
            return False, None
        try:
            async with asyncio.timeout(self._op_timeout_s):
                return True, await call()
        except (extras.RedisError, OSError) as exc:  # TimeoutError is an OSError
            self._failed(op, exc)
            return False, None

    def _encode(self, completion: JSON, ttl_s: float) -> bytes | None:
        if not (ttl_s > 0) or not isinstance(completion, dict):
            return None
        try:
            return orjson.dumps(completion)
        except TypeError as exc:  # orjson.JSONEncodeError
            self.stats.errors += 1
            self._warn("response cache: cannot serialise a completion, not stored: %s", exc)
            return None

    def _decode(self, raw: Any) -> JSON | None:
        try:
            value = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError) as exc:
            self.stats.errors += 1
            self._warn("response cache: unreadable entry ignored: %s", exc)
            return None
        return value if isinstance(value, dict) else None

    def _failed(self, op: str, exc: BaseException) -> None:
        self.stats.errors += 1
        self._down_until = self._clock() + self._retry_after_s
        self._warn("response cache: Redis %s failed (%s: %s); cache reads are misses and "
                   "writes are skipped until it recovers (next try in %gs)", op,
                   type(exc).__name__, exc, self._retry_after_s)
