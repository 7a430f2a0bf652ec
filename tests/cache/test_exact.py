"""Exact cache: key canonicalisation, the in-process LRU, Redis sharing and Redis failure."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from keel.cache import ResponseCache, is_cacheable
from keel.types import JSON

BODY: JSON = {
    "model": "support",
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "How do I reset my password?"}],
    "temperature": 0.2,
    "response_format": {"type": "json_schema",
                        "json_schema": {"name": "a", "schema": {"type": "object",
                                                                "properties": {"x": {}, "b": {}}}}},
}
COMPLETION: JSON = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "mock",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "Open settings."}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(body: dict[str, object], namespace: str = "support") -> str:
    return ResponseCache.exact_key(namespace, body)


# --- key --------------------------------------------------------------------------------------


def test_exact_key_ignores_key_order_at_every_level() -> None:
    reordered = {
        "temperature": 0.2,
        "response_format": {"json_schema": {"schema": {"properties": {"b": {}, "x": {}},
                                                       "type": "object"}, "name": "a"},
                            "type": "json_schema"},
        "messages": [{"content": "Be brief.", "role": "system"},
                     {"content": "How do I reset my password?", "role": "user"}],
        "model": "support",
    }
    assert key(reordered) == key(BODY)
    assert len(key(BODY)) == 40 and int(key(BODY), 16) >= 0


def test_exact_key_ignores_stream_user_metadata_and_null_fields() -> None:
    noisy = {**BODY, "stream": True, "stream_options": {"include_usage": True},
             "user": "u-42", "metadata": {"ticket": "7"}, "store": True, "seed": None}
    assert key(noisy) == key(BODY)


def test_exact_key_treats_integer_and_float_temperature_alike() -> None:
    assert key({**BODY, "temperature": 1}) == key({**BODY, "temperature": 1.0})


@pytest.mark.parametrize("change", [
    {"temperature": 0.3},
    {"top_p": 0.5},
    {"seed": 7},
    {"n": 2},
    {"stop": ["\n"]},
    {"max_tokens": 50},
    {"max_completion_tokens": 50},
    {"logprobs": True},
    {"reasoning_effort": "high"},
    {"parallel_tool_calls": False},
    {"tool_choice": "none"},
    {"response_format": {"type": "json_object"}},
    {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]},
    {"messages": [{"role": "user", "content": "How do I reset my password!"}]},
    {"some_future_param": 1},  # unknown fields are part of the key: a miss, never a wrong answer
])
def test_exact_key_changes_with_each_output_affecting_field(change: dict[str, object]) -> None:
    assert key({**BODY, **change}) != key(BODY)


def test_exact_key_depends_on_namespace_not_body_model() -> None:
    assert key(BODY, "support") != key(BODY, "sales")
    assert key({**BODY, "model": "gpt-4o"}, "support") == key(BODY, "support")


def test_exact_key_is_the_same_in_another_process() -> None:
    code = ("import sys, orjson; from keel.cache import ResponseCache; "
            "print(ResponseCache.exact_key('support', orjson.loads(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, orjson.dumps(BODY).decode()],
                         capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == key(BODY)


def test_is_cacheable_rejects_content_filter_unfinished_and_empty_answers() -> None:
    assert is_cacheable(COMPLETION)
    filtered = {**COMPLETION, "choices": [{**COMPLETION["choices"][0],
                                           "finish_reason": "content_filter"}]}
    unfinished = {**COMPLETION, "choices": [{**COMPLETION["choices"][0],
                                             "finish_reason": None}]}
    assert not is_cacheable(filtered)
    assert not is_cacheable(unfinished)
    assert not is_cacheable({**COMPLETION, "choices": []})
    assert not is_cacheable({"error": {"message": "boom"}})


# --- memory backend ---------------------------------------------------------------------------


async def test_memory_round_trip_returns_an_independent_copy() -> None:
    cache = ResponseCache(None)
    assert cache.backend == "memory"
    assert await cache.get("k") is None
    await cache.put("k", COMPLETION, 60)
    got = await cache.get("k")
    assert got == COMPLETION
    assert got is not None
    got["choices"][0]["message"]["content"] = "tampered"
    assert await cache.get("k") == COMPLETION
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (2, 1, 1)


async def test_memory_lru_evicts_least_recently_used_beyond_max_entries() -> None:
    cache = ResponseCache(None, max_entries=3)
    for k in ("a", "b", "c"):
        await cache.put(k, {**COMPLETION, "id": k}, 60)
    assert (await cache.get("a") or {}).get("id") == "a"  # a is now the most recent
    await cache.put("d", {**COMPLETION, "id": "d"}, 60)
    assert await cache.get("b") is None
    assert [(await cache.get(k) or {}).get("id") for k in ("a", "c", "d")] == ["a", "c", "d"]
    assert len(cache._memory) == 3


async def test_memory_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    cache = ResponseCache(None, clock=clock)
    await cache.put("k", COMPLETION, 30)
    clock.now += 29.9
    assert await cache.get("k") == COMPLETION
    clock.now += 0.2
    assert await cache.get("k") is None
    assert len(cache._memory) == 0


async def test_non_positive_ttl_stores_nothing() -> None:
    cache = ResponseCache(None)
    await cache.put("k", COMPLETION, 0)
    assert await cache.get("k") is None


# --- redis backend ----------------------------------------------------------------------------


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    await client.aclose()


@pytest.mark.redis
async def test_redis_entry_written_by_one_instance_is_served_by_another(
        redis_client: aioredis.Redis, redis_prefix: str) -> None:
    writer = ResponseCache(redis_client, prefix=redis_prefix)
    reader = ResponseCache(redis_client, prefix=redis_prefix)
    k = ResponseCache.exact_key("support", BODY)
    assert await reader.get(k) is None
    await writer.put(k, COMPLETION, 120)
    assert await reader.get(k) == COMPLETION
    raw = await redis_client.get(f"{redis_prefix}cache:{k}")
    assert raw is not None and orjson.loads(raw) == COMPLETION
    ttl_ms = await redis_client.pttl(f"{redis_prefix}cache:{k}")
    assert 110_000 < ttl_ms <= 120_000


@pytest.mark.redis
async def test_redis_prefix_separates_deployments(
        redis_client: aioredis.Redis, redis_prefix: str) -> None:
    await ResponseCache(redis_client, prefix=redis_prefix + "a:").put("k", COMPLETION, 60)
    assert await ResponseCache(redis_client, prefix=redis_prefix + "b:").get("k") is None
    assert await ResponseCache(redis_client, prefix=redis_prefix + "a:").get("k") == COMPLETION


@pytest.mark.redis
async def test_redis_entry_expires(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    cache = ResponseCache(redis_client, prefix=redis_prefix)
    await cache.put("k", COMPLETION, 0.05)
    await asyncio.sleep(0.2)
    assert await cache.get("k") is None


@pytest.mark.redis
async def test_redis_unreadable_entry_is_a_miss(
        redis_client: aioredis.Redis, redis_prefix: str) -> None:
    await redis_client.set(f"{redis_prefix}cache:k", b"\xff not json")
    cache = ResponseCache(redis_client, prefix=redis_prefix)
    assert await cache.get("k") is None
    assert cache.stats.errors == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _down_client() -> aioredis.Redis:
    """A client of a port nobody listens on; no client-side retries, so refusal is instant."""
    return aioredis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.2,
                          socket_timeout=0.2, retry=Retry(NoBackoff(), 0))


async def test_redis_down_reads_miss_writes_skip_and_warn_once(
        caplog: pytest.LogCaptureFixture) -> None:
    cache = ResponseCache(_down_client(), close_redis=True)
    with caplog.at_level(logging.WARNING, logger="keel.cache"):
        for _ in range(5):
            await cache.put("k", COMPLETION, 60)
            assert await cache.get("k") is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "keel.cache"]
    assert len(warnings) == 1
    assert "Redis write failed (ConnectionError" in warnings[0]
    # The first failure opens a 2 s window in which Redis is not tried at all.
    assert (cache.stats.errors, cache.stats.skipped) == (1, 9)
    assert (cache.stats.writes, cache.stats.misses, cache.stats.hits) == (0, 5, 0)
    await cache.aclose()


async def test_redis_is_retried_after_retry_after_s() -> None:
    clock = FakeClock()
    client = _down_client()
    cache = ResponseCache(client, retry_after_s=5, clock=clock)
    assert await cache.get("k") is None
    clock.now += 4.9
    assert await cache.get("k") is None
    assert (cache.stats.errors, cache.stats.skipped) == (1, 1)
    clock.now += 0.2
    assert await cache.get("k") is None
    assert (cache.stats.errors, cache.stats.skipped) == (2, 1)
    await client.aclose()


async def test_redis_warning_repeats_after_interval_with_suppressed_count(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    client = _down_client()
    cache = ResponseCache(client, retry_after_s=0, warn_interval_s=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="keel.cache"):
        for _ in range(3):
            await cache.get("k")
        clock.now += 61
        await cache.get("k")
    messages = [r.getMessage() for r in caplog.records if r.name == "keel.cache"]
    assert len(messages) == 2
    assert "(2 similar warnings suppressed)" in messages[1]
    await client.aclose()


async def test_redis_that_never_answers_is_a_miss_bounded_by_op_timeout() -> None:
    """A server that accepts the connection but never answers: the operation times out."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # The client's own timeouts are generous and it retries: op_timeout_s bounds the call.
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    cache = ResponseCache(client, op_timeout_s=0.2)
    try:
        assert await cache.get("k") is None
        await cache.put("k", COMPLETION, 60)
        assert (cache.stats.errors, cache.stats.skipped, cache.stats.writes) == (1, 1, 0)
    finally:
        await client.aclose()
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()
