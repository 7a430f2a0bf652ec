"""parse_cache_directive: the route's cache config plus the request's headers."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from keel.cache import CACHE_OFF, CachePolicy, parse_cache_directive
from keel.config import CacheSpec
from keel.errors import InvalidRequest

EXACT = CacheSpec(mode="exact", ttl_s=600)
SEMANTIC = CacheSpec(mode="semantic", ttl_s=300, threshold=0.9, embedding_model="emb",
                     multi_turn=True)


def test_route_without_cache_and_no_headers_is_off() -> None:
    policy = parse_cache_directive({}, None)
    assert policy == CACHE_OFF
    assert not policy.enabled


def test_route_cache_config_reads_and_writes_with_its_settings() -> None:
    assert parse_cache_directive({}, EXACT) == CachePolicy(
        read=True, write=True, mode="exact", ttl_s=600, threshold=0.95, embedding_model=None,
        multi_turn=False)
    assert parse_cache_directive({}, SEMANTIC) == CachePolicy(
        read=True, write=True, mode="semantic", ttl_s=300, threshold=0.9, embedding_model="emb",
        multi_turn=True)


@pytest.mark.parametrize(("value", "read", "write"), [
    ("no-store", False, False),
    ("no-cache", False, True),
    ("NO-CACHE", False, True),
    (" no-cache , no-store ", False, False),
    ("", True, True),
])
def test_cache_header_directives(value: str, read: bool, write: bool) -> None:
    policy = parse_cache_directive({"X-Keel-Cache": value}, EXACT)
    assert (policy.read, policy.write, policy.ttl_s) == (read, write, 600)


def test_headers_are_matched_case_insensitively_in_plain_dicts_and_starlette_headers() -> None:
    assert not parse_cache_directive({"x-keel-cache": "no-store"}, EXACT).enabled
    assert not parse_cache_directive({"X-KEEL-CACHE": "no-store"}, EXACT).enabled
    starlette = Headers(raw=[(b"x-keel-cache", b"no-cache"), (b"x-keel-cache-ttl", b"5")])
    assert parse_cache_directive(starlette, EXACT) == CachePolicy(
        read=False, write=True, mode="exact", ttl_s=5.0)


def test_ttl_header_opts_a_route_without_cache_config_into_exact_caching() -> None:
    assert parse_cache_directive({"X-Keel-Cache-TTL": "120"}, None) == CachePolicy(
        read=True, write=True, mode="exact", ttl_s=120.0)
    assert parse_cache_directive({"X-Keel-Cache-TTL": "2.5", "X-Keel-Cache": "no-cache"},
                                 None) == CachePolicy(read=False, write=True, ttl_s=2.5)
    assert parse_cache_directive({"X-Keel-Cache": "no-cache"}, None) == CACHE_OFF


def test_ttl_header_overrides_the_route_ttl() -> None:
    policy = parse_cache_directive({"X-Keel-Cache-TTL": "30"}, SEMANTIC)
    assert (policy.mode, policy.ttl_s, policy.threshold) == ("semantic", 30.0, 0.9)


@pytest.mark.parametrize("value", ["maybe", "no-cache, sometimes", "max-age=5"])
def test_unknown_cache_directive_is_rejected_with_the_allowed_values(value: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_cache_directive({"X-Keel-Cache": value}, None)
    assert err.value.status == 400
    assert "X-Keel-Cache" in err.value.message
    assert "no-store" in err.value.message and "no-cache" in err.value.message
    assert err.value.code == "invalid_cache_header"


@pytest.mark.parametrize("value", ["0", "-5", "abc", "nan", "inf", "1e9"])
def test_invalid_ttl_is_rejected_with_the_allowed_range(value: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_cache_directive({"X-Keel-Cache-TTL": value}, EXACT)
    assert f"X-Keel-Cache-TTL: '{value}'" in err.value.message
    assert "greater than 0 and at most 31536000" in err.value.message
