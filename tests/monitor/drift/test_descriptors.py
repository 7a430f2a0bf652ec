"""Descriptors of a trace-like dict: lengths, language, refusal, tools, guardrail, OOV."""

import pytest

from keel.monitor.drift.descriptors import (
    describe,
    is_refusal,
    language,
    oov_share,
    vocabulary,
)


@pytest.mark.parametrize(("text", "lang"), [
    ("What is the weather like in Paris, and how can I get there?", "en"),
    ("Wie ist das Wetter in Berlin und was kann ich tun?", "de"),
    ("Quel temps fait-il à Paris et que faire pour les enfants ?", "fr"),
    ("¿Cómo está el tiempo en Madrid y qué es lo mejor para hacer?", "es"),
    ("Привет, как дела?", "cyrillic"),
    ("今日はいい天気ですね", "ja"),
    ("今天天气很好", "zh"),
    ("مرحبا كيف حالك", "arabic"),
    ("안녕하세요", "ko"),
    ("Καλημέρα σας", "greek"),
    ("xyz qqq zzz", "latin"),
    ("12345 !!!", "und"),
    ("", "und"),
])
def test_language_is_guessed_from_script_and_stopwords(text: str, lang: str) -> None:
    assert language(text) == lang


def test_refusals_are_recognised_by_their_opening_phrases() -> None:
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("I\u2019m unable to share that information.")
    assert is_refusal("As an AI, I do not have opinions.")
    assert not is_refusal("Sure, here is the recipe you asked for.")
    assert not is_refusal("x" * 300 + " I cannot help")  # only the opening counts


def _trace(**over: object) -> dict[str, object]:
    t: dict[str, object] = {
        "id": "t1",
        "request_body": {"messages": [
            {"role": "system", "content": "Be brief and kind."},
            {"role": "user", "content": [{"type": "text", "text": "How do I reset my password?"}]},
            {"role": "assistant", "content": "Which account?"},
            {"role": "user", "content": "The work one"},
        ]},
        "response_body": {"choices": [{"message": {
            "role": "assistant", "content": "Open settings and choose reset.",
            "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": "{}"}},
                           {"type": "function", "function": {"name": "email", "arguments": "{}"}}],
        }}]},
        "latency_ms": 420.5,
        "usage": {"prompt_tokens": 31, "completion_tokens": 9},
        "guard": [{"scanner": "pii", "action": "redact"}],
    }
    t.update(over)
    return t


def test_describe_reads_the_user_text_the_answer_and_the_trace_fields() -> None:
    d = describe(_trace())
    assert d.id == "t1"
    assert d.text == "How do I reset my password?\nThe work one"
    assert d.response == "Open settings and choose reset."
    v = d.values
    assert v["request_chars"] == float(len(d.text)) and v["request_words"] == 9.0
    assert v["response_chars"] == 31.0 and v["response_words"] == 5.0
    assert (v["latency_ms"], v["prompt_tokens"], v["completion_tokens"]) == (420.5, 31.0, 9.0)
    assert (v["language"], v["refusal"], v["guardrail_hit"]) == ("en", "no", "yes")
    assert v["tool_calls"] == ("email", "lookup")


def test_describe_copes_with_missing_parts() -> None:
    d = describe({"id": 7})
    assert (d.id, d.text, d.response) == ("7", "", "")
    v = d.values
    assert v["latency_ms"] is None and v["prompt_tokens"] is None
    assert (v["language"], v["refusal"], v["guardrail_hit"], v["tool_calls"]) == \
        ("und", "no", None, ("(none)",))
    refused = describe(_trace(response_body={"choices": [{"message": {
        "role": "assistant", "content": None, "refusal": "I can't do that."}}]}, guard=[]))
    assert refused.values["refusal"] == "yes" and refused.values["guardrail_hit"] == "no"
    assert refused.values["tool_calls"] == ("(none)",)


def test_oov_share_counts_the_words_outside_the_vocabulary() -> None:
    vocab = vocabulary(["The cat sat", "on the mat"])
    assert vocab == frozenset({"the", "cat", "sat", "on", "mat"})
    assert oov_share("the dog sat on a log", vocab) == pytest.approx(3 / 6)
    assert oov_share("THE CAT", vocab) == 0.0
    assert oov_share("...", vocab) is None
