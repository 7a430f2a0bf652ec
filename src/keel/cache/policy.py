"""Per-request cache control: the route's ``cache:`` config plus the client's headers.

``X-Keel-Cache: no-store``  neither read nor write the cache for this request.
``X-Keel-Cache: no-cache``  do not answer from the cache, but store the fresh answer.
``X-Keel-Cache-TTL: N``     store the answer for N seconds; on a route without ``cache:``
                            this opts the request in to the exact cache.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from keel.config import CacheSpec
from keel.errors import InvalidRequest

CacheMode = Literal["exact", "semantic"]
CACHE_HEADER = "X-Keel-Cache"
TTL_HEADER = "X-Keel-Cache-TTL"
DIRECTIVES = ("no-store", "no-cache")
MAX_TTL_S = 365 * 24 * 3600.0
_DEFAULT_THRESHOLD: float = CacheSpec.model_fields["threshold"].default


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What the gateway does with the cache for one request."""

    read: bool
    write: bool
    mode: CacheMode = "exact"
    ttl_s: float = 0.0
    threshold: float = _DEFAULT_THRESHOLD
    embedding_model: str | None = None
    multi_turn: bool = False

    @property
    def enabled(self) -> bool:
        return self.read or self.write


CACHE_OFF = CachePolicy(read=False, write=False)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None and not hasattr(headers, "getlist"):  # a plain dict: case-insensitive
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def _directives(raw: str | None) -> frozenset[str]:
    if raw is None:
        return frozenset()
    tokens = frozenset(t.strip().lower() for t in raw.split(",") if t.strip())
    unknown = sorted(tokens.difference(DIRECTIVES))
    if unknown:
        raise InvalidRequest(
            f"{CACHE_HEADER}: unknown value '{unknown[0]}'; allowed values: no-store "
            "(neither read nor write the cache) or no-cache (skip the read, still write)",
            code="invalid_cache_header")
    return tokens


def _ttl(raw: str | None) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        ttl = float(raw.strip())
    except ValueError:
        ttl = math.nan
    if not (0 < ttl <= MAX_TTL_S):  # also rejects nan and inf
        raise InvalidRequest(
            f"{TTL_HEADER}: '{raw}' is not allowed; send a number of seconds greater than 0 "
            f"and at most {MAX_TTL_S:.0f} (one year), e.g. {TTL_HEADER}: 300",
            code="invalid_cache_header")
    return ttl


_CACHE_LOWER, _TTL_LOWER = CACHE_HEADER.lower(), TTL_HEADER.lower()


def parse_cache_directive(headers: Mapping[str, str], spec: CacheSpec | None, *,
                          lower_names: bool = False) -> CachePolicy:
    """The cache policy for one request. Invalid header values raise ``InvalidRequest``
    (400) naming the allowed values, whether or not the route caches. ``lower_names``: every
    name in ``headers`` is lower-case (an ASGI request's), so only that form is looked up."""
    if lower_names:
        directives = _directives(headers.get(_CACHE_LOWER))
        ttl = _ttl(headers.get(_TTL_LOWER))
    else:
        directives = _directives(_header(headers, CACHE_HEADER))
        ttl = _ttl(_header(headers, TTL_HEADER))
    if spec is None and ttl is None:
        return CACHE_OFF
    write = "no-store" not in directives
    read = write and "no-cache" not in directives
    if spec is None:
        assert ttl is not None
        return CachePolicy(read=read, write=write, mode="exact", ttl_s=ttl)
    return CachePolicy(read=read, write=write, mode=spec.mode,
                       ttl_s=ttl if ttl is not None else spec.ttl_s,
                       threshold=spec.threshold, embedding_model=spec.embedding_model,
                       multi_turn=spec.multi_turn)
