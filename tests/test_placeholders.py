"""keel.placeholders: the ``{{name}}`` syntax prompts and scorers share."""

from __future__ import annotations

import re

import pytest

from keel.errors import InvalidRequest
from keel.placeholders import MissingVariable, Template
from keel.prompts.spec import PromptSpec


def test_placeholders_are_filled_strings_as_they_are_other_values_as_json() -> None:
    t = Template("Hi {{name}}, {{ n }} items: {{items}}; vip={{vip}}; note={{note}}")
    assert t.render({"name": "Ada", "n": 3, "items": ["a", 1], "vip": True, "note": None}) == \
        'Hi Ada, 3 items: ["a",1]; vip=true; note=null'


def test_names_may_hold_dots_and_dashes_and_dots_reach_into_mappings() -> None:
    t = Template("{{order-id}} for {{user.name}} ({{user.plan.tier}}, {{a.b}})")
    assert t.names == ("order-id", "user.name", "user.plan.tier", "a.b")
    # a name with dots is first looked up as it is
    assert t.render({"order-id": "A1", "user": {"name": "Ada", "plan": {"tier": "pro"}},
                     "a.b": "flat"}) == "A1 for Ada (pro, flat)"


def test_everything_that_is_not_a_placeholder_is_kept_as_written() -> None:
    text = ('## Returns {#returns}\n{% raw %} {{"answer": "..."}} {{ name | upper }} {{1+1}} '
            "{single} {{ }} {{name}}\n")
    assert Template(text).names == ("name",)
    assert Template(text).render({"name": "x"}) == text.replace("{{name}}", "x")
    assert Template(text.replace("{{name}}", "")).static


def test_names_are_listed_once_in_order_of_first_use() -> None:
    t = Template("{{b}} {{a}} {{b}} {{ a }}")
    assert t.names == ("b", "a")
    assert t.missing({"a": 1}) == ["b"]
    assert t.missing({"a": 1, "b": 2}) == []


def test_a_missing_name_raises_with_the_names_there_are() -> None:
    with pytest.raises(MissingVariable) as info:
        Template("{{city}} in {{user.country}}").render({"user": {}, "city": "Oslo"})
    assert (info.value.name, info.value.available) == ("user.country", ["city", "user"])


def test_escape_applies_to_inserted_text_only() -> None:
    t = Template(r"^total: {{amount}}$")
    pattern = t.render({"amount": "$4.50 (net)"}, re.escape)
    assert pattern == r"^total: \$4\.50\ \(net\)$"
    assert re.search(pattern, "total: $4.50 (net)")
    assert not re.search(pattern, "total: $4x50 (net)")


def spec(*messages: dict[str, str]) -> PromptSpec:
    return PromptSpec.parse({"name": "p", "messages": list(messages)})


def test_a_prompt_names_every_missing_variable_and_fills_dotted_ones() -> None:
    s = spec({"role": "system", "content": "For {{customer.name}}."},
             {"role": "user", "content": "{{question}} {{order-id}} {{question}}"})
    assert s.variables == ["customer.name", "question", "order-id"]
    with pytest.raises(InvalidRequest, match=r"needs variable\(s\) customer\.name, order-id;"):
        s.render({"question": "Where?"}, "p")
    out = s.render({"customer": {"name": "Ada"}, "question": "Where?", "order-id": 7}, "p")
    assert [m["content"] for m in out] == ["For Ada.", "Where? 7 Where?"]


def test_rendered_prompt_messages_are_fresh_dicts() -> None:
    # the gateway rewrites messages in place (redaction, canaries): the version must not change
    s = spec({"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{q}}"})
    first = s.render({"q": "one"}, "p")
    for m in first:
        m["content"] = "rewritten"
    assert [m["content"] for m in s.render({"q": "two"}, "p")] == ["Be brief.", "two"]
    assert s.messages[0]["content"] == "Be brief."
