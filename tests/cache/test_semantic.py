"""Semantic cache: similarity search, buckets, bounds, expiry and who is eligible."""

from __future__ import annotations

import math
import random

import pytest

from keel.cache import ResponseCache
from keel.config import CacheSpec
from keel.gateway.providers.mock import _hash_vector

SPEC = CacheSpec(mode="semantic", embedding_model="mock-embedding")
MULTI = CacheSpec(mode="semantic", embedding_model="mock-embedding", multi_turn=True)


def answer(text: str) -> dict[str, object]:
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "mock",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def ask(question: str, **params: object) -> dict[str, object]:
    return {"model": "support", "messages": [{"role": "user", "content": question}], **params}


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


# --- search -----------------------------------------------------------------------------------


async def test_semantic_hit_above_threshold_reports_cosine_similarity() -> None:
    cache = ResponseCache(None)
    await cache.semantic_put("support", "p", [2.0, 0.0, 0.0], answer("A"), 60)
    found = await cache.semantic_get("support", "p", [0.99, 0.141, 0.0], 0.95)
    assert found is not None
    completion, similarity = found
    assert completion == answer("A")
    assert similarity == pytest.approx(0.99 / math.hypot(0.99, 0.141), abs=1e-9)
    assert await cache.semantic_get("support", "p", [0.99, 0.141, 0.0], 0.995) is None


async def test_semantic_identical_vector_hits_at_threshold_one() -> None:
    cache = ResponseCache(None)
    vec = [0.1, 0.7, -0.3, 0.2]
    await cache.semantic_put("support", "p", vec, answer("A"), 60)
    found = await cache.semantic_get("support", "p", [3 * v for v in vec], 1.0)
    assert found is not None and found[1] == 1.0


async def test_semantic_returns_the_most_similar_entry() -> None:
    cache = ResponseCache(None)
    await cache.semantic_put("support", "p", [1.0, 0.0], answer("east"), 60)
    await cache.semantic_put("support", "p", [0.0, 1.0], answer("north"), 60)
    await cache.semantic_put("support", "p", [1.0, 1.0], answer("north-east"), 60)
    found = await cache.semantic_get("support", "p", [0.2, 1.0], 0.5)
    assert found is not None
    assert found[0]["choices"][0]["message"]["content"] == "north"
    found = await cache.semantic_get("support", "p", [0.9, 1.0], 0.5)
    assert found is not None
    assert found[0]["choices"][0]["message"]["content"] == "north-east"


async def test_semantic_similar_wording_hits_and_other_question_misses() -> None:
    dims = 256
    cache = ResponseCache(None)
    stored = ResponseCache.semantic_text(ask("How do I reset my password?"))
    await cache.semantic_put("support", "p", _hash_vector(stored, dims), answer("Settings."), 60)

    same_words = _hash_vector(ResponseCache.semantic_text(ask("how do I reset my password")), dims)
    found = await cache.semantic_get("support", "p", same_words, 0.95)
    assert found is not None and found[1] == pytest.approx(1.0)

    reworded = _hash_vector("Reset my password: how do I do it?", dims)
    found = await cache.semantic_get("support", "p", reworded, 0.9)
    assert found is not None and 0.9 <= found[1] < 0.95
    assert await cache.semantic_get("support", "p", reworded, 0.95) is None

    other = _hash_vector("What is your refund policy for annual plans?", dims)
    assert await cache.semantic_get("support", "p", other, 0.5) is None


async def test_semantic_params_key_and_namespace_separate_entries() -> None:
    cache = ResponseCache(None)
    vec = [0.5, 0.5, 0.5]
    cold = ResponseCache.semantic_params_key("support", ask("Hi", temperature=0))
    warm = ResponseCache.semantic_params_key("support", ask("Hi", temperature=0.9))
    await cache.semantic_put("support", cold, vec, answer("cold"), 60)
    assert await cache.semantic_get("support", warm, vec, 0.5) is None
    assert await cache.semantic_get("sales", cold, vec, 0.5) is None
    found = await cache.semantic_get("support", cold, vec, 0.5)
    assert found is not None and found[0] == answer("cold")


async def test_semantic_dimension_mismatch_and_zero_vector_are_misses() -> None:
    cache = ResponseCache(None)
    await cache.semantic_put("support", "p", [1.0, 0.0, 0.0], answer("A"), 60)
    assert await cache.semantic_get("support", "p", [1.0, 0.0], 0.5) is None
    assert await cache.semantic_get("support", "p", [0.0, 0.0, 0.0], 0.5) is None
    await cache.semantic_put("support", "p", [0.0, 0.0, 0.0], answer("zero"), 60)
    assert len(cache._semantic) == 1


async def test_semantic_entries_expire() -> None:
    clock = FakeClock()
    cache = ResponseCache(None, clock=clock)
    await cache.semantic_put("support", "p", [1.0, 0.0], answer("A"), 10)
    clock.now += 9.5
    assert await cache.semantic_get("support", "p", [1.0, 0.0], 0.9) is not None
    clock.now += 1
    assert await cache.semantic_get("support", "p", [1.0, 0.0], 0.9) is None
    assert len(cache._semantic) == 0


async def test_semantic_expired_best_match_falls_back_to_live_one() -> None:
    clock = FakeClock()
    cache = ResponseCache(None, clock=clock)
    await cache.semantic_put("support", "p", [1.0, 0.0], answer("short-lived"), 5)
    await cache.semantic_put("support", "p", [1.0, 0.2], answer("long-lived"), 100)
    clock.now += 6
    found = await cache.semantic_get("support", "p", [1.0, 0.0], 0.9)
    assert found is not None
    assert found[0]["choices"][0]["message"]["content"] == "long-lived"


async def test_semantic_index_is_bounded_and_drops_oldest_across_buckets() -> None:
    cache = ResponseCache(None, max_entries=3)
    await cache.semantic_put("support", "a", [1.0, 0.0], answer("first"), 60)
    await cache.semantic_put("support", "b", [1.0, 0.0], answer("second"), 60)
    await cache.semantic_put("support", "a", [0.0, 1.0], answer("third"), 60)
    await cache.semantic_put("support", "c", [1.0, 0.0], answer("fourth"), 60)
    assert len(cache._semantic) == 3
    assert await cache.semantic_get("support", "a", [1.0, 0.0], 0.9) is None
    for bucket, vec, text in (("b", [1.0, 0.0], "second"), ("a", [0.0, 1.0], "third"),
                              ("c", [1.0, 0.0], "fourth")):
        found = await cache.semantic_get("support", bucket, vec, 0.9)
        assert found is not None and found[0] == answer(text)


async def test_semantic_hit_is_an_independent_copy() -> None:
    cache = ResponseCache(None)
    await cache.semantic_put("support", "p", [1.0], answer("A"), 60)
    found = await cache.semantic_get("support", "p", [1.0], 0.9)
    assert found is not None
    found[0]["choices"] = []
    again = await cache.semantic_get("support", "p", [1.0], 0.9)
    assert again is not None and again[0] == answer("A")


# --- params key and text ----------------------------------------------------------------------


def test_semantic_params_key_ignores_user_wording_but_not_params_or_system() -> None:
    base = ResponseCache.semantic_params_key("support", ask("How do I reset my password?"))
    assert ResponseCache.semantic_params_key("support", ask("Password reset?")) == base
    assert ResponseCache.semantic_params_key(
        "support", ask("x", stream=True, user="u1", metadata={"a": "b"})) == base
    assert ResponseCache.semantic_params_key("support", ask("x", temperature=0.1)) != base
    assert ResponseCache.semantic_params_key("support", ask("x", max_tokens=20)) != base
    assert ResponseCache.semantic_params_key("sales", ask("x")) != base
    with_system = {"model": "support", "messages": [
        {"role": "system", "content": "Answer in French."}, {"role": "user", "content": "x"}]}
    assert ResponseCache.semantic_params_key("support", with_system) != base


def test_semantic_text_leaves_out_a_shared_system_prompt() -> None:
    """A long shared system prompt would make any two questions look alike (cosine 0.998
    with the mock embedding); it is matched exactly through the params key instead."""
    system = {"role": "system", "content": "You are the helpful support assistant of Acme. " * 20}
    a = {"messages": [system, {"role": "user", "content": "How do I reset my password?"}]}
    b = {"messages": [system, {"role": "user", "content": "What is your refund policy?"}]}
    assert ResponseCache.semantic_text(a) == "How do I reset my password?"
    va = _hash_vector(ResponseCache.semantic_text(a), 256)
    vb = _hash_vector(ResponseCache.semantic_text(b), 256)
    assert sum(x * y for x, y in zip(va, vb, strict=True)) < 0.5
    assert ResponseCache.semantic_params_key("s", a) == ResponseCache.semantic_params_key("s", b)


def test_semantic_text_uses_text_parts_and_labels_multi_turn_roles() -> None:
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"},
                                                       {"type": "text", "text": "there"}]}]}
    assert ResponseCache.semantic_text(parts) == "Hello there"
    convo = {"messages": [{"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello!"},
                          {"role": "user", "content": "Reset password?"}]}
    assert ResponseCache.semantic_text(convo) == "user: Hi\nassistant: Hello!\nuser: Reset password?"


# --- eligibility ------------------------------------------------------------------------------

USER = {"role": "user", "content": "How do I reset my password?"}
SYSTEM = {"role": "system", "content": "Be brief."}
DEVELOPER = {"role": "developer", "content": "No emojis."}
ASSISTANT = {"role": "assistant", "content": "Open settings."}
TOOL_CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}
TOOL_RESULT = {"role": "tool", "tool_call_id": "c1", "content": "{}"}
IMAGE = {"role": "user", "content": [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]


@pytest.mark.parametrize(("messages", "extra", "single", "multi"), [
    ([USER], {}, True, True),
    ([SYSTEM, DEVELOPER, USER], {}, True, True),
    ([USER], {"n": 1}, True, True),
    ([USER], {"n": 2}, False, False),
    ([USER], {"tools": TOOLS}, False, False),
    ([USER, ASSISTANT, USER], {}, False, True),
    ([USER, USER], {}, False, True),
    ([SYSTEM, USER, TOOL_CALL, TOOL_RESULT], {}, False, False),
    ([SYSTEM, USER, TOOL_CALL, TOOL_RESULT, USER], {}, False, False),
    ([USER, ASSISTANT], {}, False, False),  # nothing to answer: ends with the assistant
    ([SYSTEM], {}, False, False),
    ([], {}, False, False),
    ([IMAGE], {}, False, False),
    ([{"role": "user", "content": "   "}], {}, False, False),
])
def test_semantic_eligibility(messages: list[dict[str, object]], extra: dict[str, object],
                              single: bool, multi: bool) -> None:
    body = {"model": "support", "messages": messages, **extra}
    assert ResponseCache.semantic_eligible(body, SPEC) is single
    assert ResponseCache.semantic_eligible(body, MULTI) is multi


def test_numpy_and_pure_python_search_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from keel.cache import semantic

    if semantic._np is None:
        pytest.skip("numpy is not installed (it is an optional accelerator)")
    rng = random.Random(7)
    index = semantic.SemanticIndex(1000)
    for i in range(300):
        index.add(("ns", "p"), [rng.gauss(0, 1) for _ in range(16)], str(i).encode(), 60)
    queries = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(20)]
    with_numpy = [index.search(("ns", "p"), q, t) for q in queries for t in (0.3, 0.6)]
    monkeypatch.setattr(semantic, "_np", None)
    pure = [index.search(("ns", "p"), q, t) for q in queries for t in (0.3, 0.6)]
    assert [r and r[0] for r in with_numpy] == [r and r[0] for r in pure]
    assert any(r is not None for r in pure)
    for a, b in zip(with_numpy, pure, strict=True):
        assert (a and a[1]) == pytest.approx(b and b[1])
