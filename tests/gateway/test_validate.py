"""The chat body checks' shortcuts: a message taken as plain without a field-by-field check is
one that check passes, and a body is refused with the first problem in the fixed order
whatever else it carries."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import InvalidRequest
from keel.gateway.validate import _message, _plain_message, check_chat

VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                   st.sampled_from(["system", "developer", "user", "assistant", "tool",
                                    "function", "robot"]),
                   st.lists(st.just({"type": "text", "text": "hi"}), max_size=2),
                   st.just({"role": "user"}), st.just([1]))
MESSAGES = st.one_of(
    st.dictionaries(st.sampled_from(["role", "content", "name", "tool_calls",
                                     "tool_call_id", "function_call", "extra"]), VALUES,
                    max_size=4),
    VALUES)


@given(MESSAGES)
def test_a_message_taken_as_plain_is_one_the_full_check_passes(m: Any) -> None:
    if _plain_message(m):
        _message(m, "messages[0]")  # raises if the shortcut let a bad message through


def test_the_plain_shape_is_role_and_string_content_only() -> None:
    assert _plain_message({"role": "user", "content": "hi"})
    assert not _plain_message({"role": "tool", "content": "hi"})  # needs tool_call_id
    assert not _plain_message({"role": "user", "content": "hi", "name": "bob"})
    assert not _plain_message({"role": ["user"], "content": "hi"})  # not hashable: no crash
    assert not _plain_message({"role": "user", "content": [{"type": "text", "text": "x"}]})


@pytest.mark.parametrize(("extra", "param"), [
    ({"stream": "yes", "temperature": 9}, "stream"),
    ({"temperature": 9, "stream": "yes"}, "stream"),  # the order of checks, not of the body
    ({"max_completion_tokens": 0, "max_tokens": 0}, "max_tokens"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"metadata": {"a": 1}, "user": 3}, "user"),
    ({"seed": 1.5, "stop": 3}, "seed"),
])
def test_the_first_problem_in_check_order_is_the_one_reported(
        extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra})
    assert info.value.param == param


def test_absent_and_null_options_pass() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert check_chat(body) == "m"
    assert check_chat({**body, "stream": None, "temperature": None, "metadata": None}) == "m"
