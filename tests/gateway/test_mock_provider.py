"""The offline mock provider: deterministic content, configured latency and failures."""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import pytest

from keel.config import ProviderConfig
from keel.errors import UpstreamError, UpstreamRateLimited, UpstreamTimeout
from keel.gateway.providers.mock import MockProvider

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user",
                                                    "content": "Where is my invoice?"}]}


def provider(**kw: Any) -> MockProvider:
    return MockProvider(ProviderConfig(name="mock", kind="mock", **kw))


async def test_same_input_same_answer_and_seed_changes_it() -> None:
    p = provider()
    a = await p.chat(BODY)
    b = await p.chat(BODY)
    c = await p.chat({**BODY, "seed": 3})
    text = a.body["choices"][0]["message"]["content"]
    assert text == b.body["choices"][0]["message"]["content"]
    assert text != c.body["choices"][0]["message"]["content"]
    assert "invoice" in text
    assert a.usage.input_tokens > 0 and a.usage.output_tokens > 0


@pytest.mark.parametrize(("errors", "exc", "status"), [
    ({"rate_limit": 1.0}, UpstreamRateLimited, 429),
    ({"server_error": 1.0}, UpstreamError, 502),
])
async def test_configured_failures(errors: dict[str, float], exc: type[Exception],
                                   status: int) -> None:
    p = provider(errors=errors)
    with pytest.raises(exc) as info:
        await p.chat(BODY)
    assert info.value.status == status  # type: ignore[attr-defined]
    with pytest.raises(exc):
        await anext(p.chat_stream(BODY))


async def test_configured_timeout_waits_then_fails() -> None:
    p = provider(errors={"timeout": 1.0}, timeout_s=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(UpstreamTimeout, match=r"0\.05s"):
        await p.chat(BODY)
    assert loop.time() - start >= 0.05


async def test_partial_error_rate_fails_about_that_often() -> None:
    p = provider(errors={"rate_limit": 0.2}, seed=1)
    failures = 0
    for _ in range(500):
        try:
            await p.chat(BODY)
        except UpstreamRateLimited:
            failures += 1
    assert 60 <= failures <= 140  # 20% of 500, with generous slack for the seeded RNG


async def test_latency_follows_the_configured_median() -> None:
    p = provider(latency={"p50_ms": 20, "p99_ms": 80})
    samples = [p._latency() * 1000 for _ in range(2000)]
    assert 17 <= statistics.median(samples) <= 23
    assert max(samples) > 40  # a tail exists
    fixed = provider(latency={"p50_ms": 10})
    assert {fixed._latency() for _ in range(10)} == {0.01}


async def test_stream_ends_with_finish_reason_then_usage() -> None:
    chunks = [c async for c in provider().chat_stream(BODY)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_stop_sequence_cuts_the_answer() -> None:
    p = provider()
    full = (await p.chat(BODY)).body["choices"][0]["message"]["content"]
    word = full.split(" ")[3]
    cut = (await p.chat({**BODY, "stop": [word]})).body["choices"][0]["message"]["content"]
    assert word not in cut and full.startswith(cut)
