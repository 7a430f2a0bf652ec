"""keel.text: the one way message content becomes text, and the answer text of a completion."""

from __future__ import annotations

from typing import Any

import pytest

from keel.text import answer_text, content_text, estimate_messages

PARTS: list[Any] = [
    {"type": "text", "text": "Describe this"},
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    {"type": "text", "text": "in French."},
]


def test_a_string_is_its_own_text_and_anything_else_is_empty() -> None:
    assert content_text("Hello  there\n") == "Hello  there\n"
    assert content_text(None) == content_text(42) == content_text({"text": "x"}) == ""
    assert content_text([]) == ""


def test_text_parts_are_joined_with_a_space_unless_told_otherwise() -> None:
    assert content_text(PARTS) == "Describe this in French."
    assert content_text(PARTS, "") == "Describe thisin French."
    assert content_text(PARTS, "\n\n") == "Describe this\n\nin French."


def test_other_parts_are_left_out_or_shown_as_placeholders() -> None:
    assert content_text(PARTS, placeholders=True) == "Describe this [image_url] in French."
    odd = [{"type": "input_audio", "input_audio": {}}, {"text": 5}, "not a part", {"text": "ok"}]
    # a part without a type counts as text; a text that is not a string does not
    assert content_text(odd) == "ok"
    assert content_text(odd, placeholders=True) == "[input_audio] [part] ok"


def test_refusal_parts_count_as_text() -> None:
    history = [{"type": "text", "text": "Sure."}, {"type": "refusal", "refusal": "Not that."}]
    assert content_text(history, "") == "Sure.Not that."


def test_opentelemetry_parts_hold_their_text_under_content() -> None:
    parts = [{"type": "text", "content": "Hello"},
             {"type": "blob", "modality": "image", "content": "iVBORw0KGgo="},
             {"type": "reasoning", "content": "thinking..."},
             {"type": "text", "content": " world"}]
    assert content_text(parts, "", key="content") == "Hello world"


def test_answer_text_is_the_first_choice_text_or_none() -> None:
    def completion(content: Any) -> dict[str, Any]:
        return {"choices": [{"message": {"role": "assistant", "content": content}},
                            {"message": {"role": "assistant", "content": "second"}}]}

    assert answer_text(completion("Hi.")) == "Hi."
    assert answer_text(completion("")) == ""
    assert answer_text(completion([{"type": "text", "text": "one "},
                                   {"type": "text", "text": "piece"}])) == "one piece"
    assert answer_text(completion([{"type": "image_url", "image_url": {}}])) is None
    assert answer_text(completion(None)) is None
    broken: list[Any] = [None, "text", {}, {"choices": []}, {"choices": ["x"]},
                         {"choices": [{"message": "x"}]}, {"data": [{"embedding": [0.1]}]}]
    for body in broken:
        assert answer_text(body) is None


@pytest.mark.parametrize("content", ["Describe this in French.", PARTS])
def test_estimates_read_the_same_text_from_a_string_or_its_parts(content: Any) -> None:
    assert estimate_messages([{"role": "user", "content": content}]) == \
        estimate_messages([{"role": "user", "content": "Describe this in French."}])
