"""The response cache: exact answers (memory or Redis) and semantic answers (per replica).

The gateway computes a key (``ResponseCache.exact_key``), reads before the upstream call,
replays hits (``completion_to_chunks`` for streaming clients) and stores successful
answers; ``parse_cache_directive`` turns the route's ``cache:`` config and the request's
``X-Keel-Cache`` / ``X-Keel-Cache-TTL`` headers into a ``CachePolicy``.
"""

from keel.cache.keys import is_cacheable
from keel.cache.policy import CACHE_OFF, CachePolicy, parse_cache_directive
from keel.cache.replay import completion_to_chunks
from keel.cache.store import CacheStats, ResponseCache

__all__ = [
    "CACHE_OFF",
    "CachePolicy",
    "CacheStats",
    "ResponseCache",
    "completion_to_chunks",
    "is_cacheable",
    "parse_cache_directive",
]
