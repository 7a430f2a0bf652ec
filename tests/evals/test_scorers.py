"""The scorer registry and the deterministic built-in scorers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keel.evals.scorers import (
    Score,
    ScoreInput,
    ScorerConfigError,
    base,
    build_scorer,
    register_scorer,
    scorer,
    scorer_types,
)
from keel.evals.scorers.custom import FunctionScorer

BUILTINS = ["contains", "contains-all", "contains-any", "cost", "equals", "faithfulness",
            "groundedness", "is-json", "json-schema", "judge", "latency", "length", "pairwise",
            "python", "refusal", "regex", "relevance", "similarity", "starts-with", "tool-call"]


@pytest.fixture(autouse=True)
def restore_registry() -> Iterator[None]:
    """Plugin types registered by a test do not leak into other tests."""
    scorer_types()  # built-ins loaded before the snapshot
    saved = dict(base._REGISTRY)
    yield
    base._REGISTRY.clear()
    base._REGISTRY.update(saved)


def inp(text: str = "", *, expected: str | None = None, output: dict[str, Any] | None = None,
        latency_ms: float | None = None, cost_usd: float | None = None,
        **variables: Any) -> ScoreInput:
    return ScoreInput(output_text=text, output=output, expected=expected, variables=variables,
                      context=[], latency_ms=latency_ms, cost_usd=cost_usd)


async def run(config: dict[str, Any], case: ScoreInput) -> Score:
    return await build_scorer(config).score(case)


def completion(content: str | None = None, *, tool_calls: list[dict[str, Any]] | None = None,
               finish_reason: str = "stop", refusal: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    if refusal is not None:
        message["refusal"] = refusal
    return {"object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}


def call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "call_1", "type": "function",
            "function": {"name": name, "arguments": arguments}}


# Custom scorers referenced by tests (``python`` points at them by module path).

def my_custom(inp: ScoreInput) -> float:
    return 0.75 if "polite" in inp.output_text else 0.25


async def my_async_custom(inp: ScoreInput) -> bool:
    return inp.output_text.endswith("!")


def my_score_custom(inp: ScoreInput) -> Score:
    return Score(0.4, True, "custom reason")


def my_broken_custom(inp: ScoreInput) -> float:
    raise RuntimeError("boom")


def my_out_of_range(inp: ScoreInput) -> float:
    return 7.0


# --- registry ---------------------------------------------------------------------------

def test_scorer_types_lists_every_builtin() -> None:
    assert scorer_types() == BUILTINS


async def test_scorer_name_defaults_to_type_and_takes_name_option() -> None:
    assert build_scorer({"type": "contains", "value": "x"}).name == "contains"
    assert build_scorer({"type": "contains", "value": "x", "name": "has-x"}).name == "has-x"


async def test_register_scorer_adds_a_plugin_type_through_the_same_registry() -> None:
    class Always:
        def __init__(self, config: dict[str, Any]) -> None:
            self.name = config.get("name", "always-test")

        async def score(self, inp: ScoreInput) -> Score:
            return Score(1.0, True, "always")

    register_scorer("always-test")(Always)
    assert "always-test" in scorer_types()
    assert (await run({"type": "always-test"}, inp("x"))).passed is True


# --- config errors ----------------------------------------------------------------------

def test_unknown_type_lists_the_known_types_and_names_where() -> None:
    with pytest.raises(ScorerConfigError) as err:
        build_scorer({"type": "containz", "value": "x"}, where="evals.yaml: scorers[2]")
    msg = str(err.value)
    assert msg.startswith("evals.yaml: scorers[2].type: unknown scorer type 'containz'")
    for name in ("contains", "json-schema", "tool-call", "refusal"):
        assert name in msg


def test_missing_type_is_a_config_error_naming_type() -> None:
    with pytest.raises(ScorerConfigError, match=r"^scorers\[0\]\.type: required"):
        build_scorer({"value": "x"})


def test_non_mapping_entry_is_a_config_error() -> None:
    with pytest.raises(ScorerConfigError, match=r"^scorers\[1\]: must be a mapping"):
        build_scorer("contains", where="scorers[1]")  # type: ignore[arg-type]


def test_missing_required_option_names_the_key_and_an_example() -> None:
    with pytest.raises(ScorerConfigError) as err:
        build_scorer({"type": "contains"}, where="scorers[3]")
    assert str(err.value) == 'scorers[3].value: required; e.g. value: "{{expected}}"'
    assert err.value.key == "value"


def test_unknown_option_is_a_config_error_listing_allowed_options() -> None:
    with pytest.raises(ScorerConfigError,
                       match=r"^scorers\[0\]\.case_sensitve: unknown option for 'contains'; "
                             r"allowed: type, name, value, case_sensitive, threshold$"):
        build_scorer({"type": "contains", "value": "x", "case_sensitve": True})


def test_wrong_option_types_are_config_errors() -> None:
    with pytest.raises(ScorerConfigError, match=r"case_sensitive: must be true or false"):
        build_scorer({"type": "equals", "value": "x", "case_sensitive": "yes"})
    with pytest.raises(ScorerConfigError, match=r"threshold: must be between 0 and 1"):
        build_scorer({"type": "contains", "value": "x", "threshold": 2})
    with pytest.raises(ScorerConfigError, match=r"values: must be a non-empty list"):
        build_scorer({"type": "contains-any", "values": "a"})


def test_invalid_regex_is_a_config_error_naming_pattern() -> None:
    with pytest.raises(ScorerConfigError,
                       match=r"^scorers\[0\]\.pattern: not a valid regular expression"):
        build_scorer({"type": "regex", "pattern": "(unclosed"})


def test_unknown_regex_flag_is_a_config_error() -> None:
    with pytest.raises(ScorerConfigError, match=r"flags: unknown flag\(s\) 'q'"):
        build_scorer({"type": "regex", "pattern": "a", "flags": "iq"})


def test_latency_rejects_threshold_because_it_uses_max_ms() -> None:
    with pytest.raises(ScorerConfigError, match=r"threshold: unknown option for 'latency'"):
        build_scorer({"type": "latency", "max_ms": 100, "threshold": 0.5})


def test_length_needs_a_bound_and_consistent_bounds() -> None:
    with pytest.raises(ScorerConfigError, match=r"set at least one of min_chars"):
        build_scorer({"type": "length"})
    with pytest.raises(ScorerConfigError, match=r"min_words: min_words \(10\) is above"):
        build_scorer({"type": "length", "min_words": 10, "max_words": 5})


def test_factory_crash_is_wrapped_as_config_error() -> None:
    def bad(config: dict[str, Any]) -> Any:
        raise KeyError("oops")

    register_scorer("crashy-test")(bad)
    with pytest.raises(ScorerConfigError, match=r"scorer type 'crashy-test' could not be built"):
        build_scorer({"type": "crashy-test"})


# --- templating -------------------------------------------------------------------------

async def test_value_renders_expected_per_case() -> None:
    s = build_scorer({"type": "contains", "value": "{{expected}}"})
    ok = await s.score(inp("The capital is Paris.", expected="paris"))
    bad = await s.score(inp("The capital is Lyon.", expected="Paris"))
    assert (ok.value, ok.passed, ok.error) == (1.0, True, None)
    assert (bad.value, bad.passed) == (0.0, False)
    assert bad.explanation == "answer does not contain 'Paris'"


async def test_value_renders_variables_including_dotted_and_non_strings() -> None:
    s = build_scorer({"type": "equals", "value": "{{ user.name }} is {{age}}"})
    score = await s.score(inp("Ada is 36", user={"name": "Ada"}, age=36))
    assert score.passed is True


async def test_missing_variable_is_an_error_score_not_a_pass() -> None:
    s = build_scorer({"type": "contains", "value": "{{city}}"})
    score = await s.score(inp("Paris", country="France"))
    assert score.passed is None
    assert score.value == 0.0
    assert score.error == "missing variable 'city' for scorer 'contains' (this case has: country)"
    assert "city" in score.explanation


async def test_missing_expected_is_an_error_score() -> None:
    score = await run({"type": "equals", "value": "{{expected}}"}, inp("Paris"))
    assert score.passed is None
    assert score.error is not None and "'expected'" in score.error


async def test_regex_inserts_variables_literally() -> None:
    s = build_scorer({"type": "regex", "pattern": r"total: {{amount}}\b"})
    assert (await s.score(inp("total: 3.50 USD", amount="3.50"))).passed is True
    assert (await s.score(inp("total: 3x50 USD", amount="3.50"))).passed is False


# --- text scorers -----------------------------------------------------------------------

async def test_equals_strips_and_is_case_sensitive_by_default() -> None:
    s = build_scorer({"type": "equals", "value": "Paris"})
    assert (await s.score(inp("  Paris\n"))).passed is True
    bad = await s.score(inp("paris"))
    assert bad.passed is False
    assert bad.explanation == "answer 'paris' does not equal 'Paris'"


async def test_equals_options_case_insensitive_and_no_strip() -> None:
    assert (await run({"type": "equals", "value": "Paris", "case_sensitive": False},
                      inp("PARIS"))).passed is True
    assert (await run({"type": "equals", "value": "Paris", "strip": False},
                      inp("Paris "))).passed is False


async def test_contains_is_case_insensitive_by_default_and_optionally_sensitive() -> None:
    assert (await run({"type": "contains", "value": "PARIS"}, inp("in paris"))).passed is True
    score = await run({"type": "contains", "value": "PARIS", "case_sensitive": True},
                      inp("in paris"))
    assert score.passed is False
    assert score.explanation == "answer does not contain 'PARIS'"


async def test_contains_any_passes_on_one_hit_and_explains_misses() -> None:
    s = build_scorer({"type": "contains-any", "values": ["Paris", "{{alt}}"]})
    ok = await s.score(inp("It is Lutetia", alt="Lutetia"))
    assert (ok.value, ok.passed, ok.explanation) == (1.0, True, "answer contains 'Lutetia'")
    bad = await s.score(inp("It is Rome", alt="Lutetia"))
    assert bad.passed is False
    assert bad.explanation == "answer contains none of 'Paris', 'Lutetia'"


async def test_contains_all_value_is_fraction_found_and_threshold_decides() -> None:
    config = {"type": "contains-all", "values": ["red", "green", "blue", "white"]}
    score = await run(config, inp("red, green and blue"))
    assert score.value == 0.75
    assert score.passed is False
    assert "missing 1 of 4: 'white'" in score.explanation
    lenient = await run({**config, "threshold": 0.7}, inp("red, green and blue"))
    assert (lenient.value, lenient.passed) == (0.75, True)
    full = await run(config, inp("Red green blue WHITE"))
    assert (full.value, full.passed, full.explanation) == (
        1.0, True, "answer contains all 4 values")


async def test_regex_search_with_flags_and_explanation() -> None:
    s = build_scorer({"type": "regex", "pattern": r"^order #\d+$", "flags": "im"})
    ok = await s.score(inp("Thanks!\nORDER #123"))
    assert ok.passed is True
    assert ok.explanation == "matched 'ORDER #123' at 8"
    bad = await s.score(inp("order #abc"))
    assert bad.passed is False
    assert bad.explanation == r"answer does not match /^order #\d+$/"


async def test_starts_with_ignores_leading_whitespace_and_is_case_sensitive() -> None:
    s = build_scorer({"type": "starts-with", "value": "Answer:"})
    assert (await s.score(inp("\n Answer: 42"))).passed is True
    bad = await s.score(inp("answer: 42"))
    assert bad.passed is False
    assert bad.explanation.startswith("answer starts with 'answer: 42', not 'Answer:'")


async def test_length_bounds_on_chars_and_words() -> None:
    s = build_scorer({"type": "length", "min_words": 2, "max_chars": 20})
    ok = await s.score(inp("two words"))
    assert ok.passed is True
    assert ok.explanation == "9 chars, 2 words: within bounds"
    short = await s.score(inp("one"))
    assert short.passed is False
    assert short.explanation == "1 words is below min_words 2"
    long = await s.score(inp("this answer is far too long"))
    assert long.explanation == "27 chars is above max_chars 20"


# --- structured scorers -----------------------------------------------------------------

async def test_is_json_passes_on_json_and_explains_failures() -> None:
    ok = await run({"type": "is-json"}, inp(' {"a": 1} '))
    assert (ok.value, ok.passed, ok.explanation) == (1.0, True, "answer is valid JSON (dict)")
    bad = await run({"type": "is-json"}, inp("{'a': 1}"))
    assert (bad.value, bad.passed) == (0.0, False)
    assert bad.explanation.startswith("answer is not valid JSON:")
    fenced = await run({"type": "is-json"}, inp('```json\n{"a": 1}\n```'))
    assert "code fence" in fenced.explanation
    assert (await run({"type": "is-json"}, inp(""))).explanation == "answer is empty, not JSON"


PERSON = {
    "type": "object",
    "required": ["name", "tags", "address"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 20, "pattern": "^[A-Z]"},
        "age": {"type": ["integer", "null"], "minimum": 0, "maximum": 150},
        "role": {"enum": ["admin", "user"]},
        "kind": {"const": "person"},
        "tags": {"type": "array", "minItems": 1, "maxItems": 3,
                 "items": {"type": "string", "pattern": "^[a-z]+$"}},
        "address": {"type": "object", "required": ["city"],
                    "properties": {"city": {"type": "string"}}},
    },
}


async def test_json_schema_accepts_a_valid_nested_document() -> None:
    doc = ('{"name": "Ada", "age": 36, "role": "admin", "kind": "person", "tags": ["math"],'
           ' "address": {"city": "London", "zip": "N1"}}')
    score = await run({"type": "json-schema", "schema": PERSON}, inp(doc))
    assert (score.value, score.passed, score.explanation) == (
        1.0, True, "answer matches the schema")


async def test_json_schema_null_in_type_list_and_integer_float() -> None:
    doc = '{"name": "Ada", "age": null, "tags": ["x"], "address": {"city": "L"}}'
    assert (await run({"type": "json-schema", "schema": PERSON}, inp(doc))).passed is True
    doc = '{"name": "Ada", "age": 36.0, "tags": ["x"], "address": {"city": "L"}}'
    assert (await run({"type": "json-schema", "schema": PERSON}, inp(doc))).passed is True


@pytest.mark.parametrize(("doc", "reason"), [
    ('{"name": "ada", "tags": ["x"], "address": {"city": "L"}}',
     "$.name: 'ada' does not match pattern '^[A-Z]'"),
    ('{"name": "Ada", "tags": ["x", "Y1"], "address": {"city": "L"}}',
     "$.tags[1]: 'Y1' does not match pattern '^[a-z]+$'"),
    ('{"name": "Ada", "tags": [], "address": {"city": "L"}}',
     "$.tags: 0 items, fewer than minItems 1"),
    ('{"name": "Ada", "tags": ["a", "b", "c", "d"], "address": {"city": "L"}}',
     "$.tags: 4 items, more than maxItems 3"),
    ('{"name": "Ada", "tags": ["x"], "address": {}}',
     "$.address: missing required property 'city'"),
    ('{"name": "Ada", "tags": ["x"], "address": {"city": 7}}',
     "$.address.city: expected string, got int"),
    ('{"name": "Ada", "role": "root", "tags": ["x"], "address": {"city": "L"}}',
     "$.role: 'root' is not one of ['admin', 'user']"),
    ('{"name": "Ada", "kind": "robot", "tags": ["x"], "address": {"city": "L"}}',
     "$.kind: must be 'person', got 'robot'"),
    ('{"name": "Ada", "age": -1, "tags": ["x"], "address": {"city": "L"}}',
     "$.age: -1 is below minimum 0"),
    ('{"name": "Ada", "age": true, "tags": ["x"], "address": {"city": "L"}}',
     "$.age: expected integer or null, got bool"),
    ('{"name": "Ada", "extra": 1, "tags": ["x"], "address": {"city": "L"}}',
     "$: unexpected property extra"),
    ('{"name": "' + "A" * 21 + '", "tags": ["x"], "address": {"city": "L"}}',
     "$.name: length 21 is above maxLength 20"),
    ('[1, 2]', "$: expected object, got list"),
])
async def test_json_schema_failures_say_where_and_why(doc: str, reason: str) -> None:
    score = await run({"type": "json-schema", "schema": PERSON}, inp(doc))
    assert (score.value, score.passed) == (0.0, False)
    assert score.explanation == reason


async def test_json_schema_answer_that_is_not_json_fails_with_reason() -> None:
    score = await run({"type": "json-schema", "schema": {"type": "object"}}, inp("nope"))
    assert score.passed is False
    assert score.explanation.startswith("answer is not valid JSON")


@pytest.mark.parametrize(("schema", "message"), [
    ({"oneOf": [{"type": "string"}]}, "schema.oneOf: keyword 'oneOf' is not supported"),
    ({"type": "object", "properties": {"a": {"$ref": "#/x"}}},
     "schema.properties.a.$ref: keyword '$ref' is not supported"),
    ({"type": "array", "items": {"format": "email"}},
     "schema.items.format: keyword 'format' is not supported"),
    ({"additionalProperties": {"type": "string"}},
     "schema.additionalProperties: only true or false is supported"),
    ({"type": "strin"}, "schema.type: one of object, array"),
    ({"pattern": "("}, "schema.pattern: not a valid regular expression"),
])
def test_json_schema_unsupported_or_invalid_keywords_are_config_errors(
        schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ScorerConfigError) as err:
        build_scorer({"type": "json-schema", "schema": schema})
    assert str(err.value).startswith(f"scorers[0].{message}")


def test_json_schema_accepts_annotations() -> None:
    build_scorer({"type": "json-schema",
                  "schema": {"title": "T", "description": "d", "type": "string"}})


async def test_tool_call_matches_name_and_argument_subset() -> None:
    out = completion(tool_calls=[call("search", '{"q": "x"}'),
                                 call("get_weather", '{"city": "Paris", "unit": "c", '
                                                     '"opts": {"days": 3, "hourly": true}}')])
    config = {"type": "tool-call", "name": "get_weather",
              "arguments": {"city": "{{city}}", "opts": {"days": 3}}}
    score = await run(config, inp("", output=out, city="Paris"))
    assert (score.value, score.passed) == (1.0, True)
    assert score.explanation == "answer calls 'get_weather' with matching arguments"


async def test_tool_call_name_only_and_scorer_label() -> None:
    s = build_scorer({"type": "tool-call", "name": "search", "label": "searches"})
    assert s.name == "searches"
    score = await s.score(inp("", output=completion(tool_calls=[call("search", "{}")])))
    assert (score.passed, score.explanation) == (True, "answer calls 'search'")


async def test_tool_call_fails_on_wrong_argument_value_with_reason() -> None:
    out = completion(tool_calls=[call("get_weather", '{"city": "Lyon", "opts": {"days": 1}}')])
    score = await run({"type": "tool-call", "name": "get_weather",
                       "arguments": {"opts": {"days": 3}}}, inp("", output=out))
    assert score.passed is False
    assert score.explanation == "'get_weather': arguments.opts.days is 1, expected 3"


async def test_tool_call_fails_on_missing_argument_and_bool_is_not_int() -> None:
    out = completion(tool_calls=[call("f", '{"a": true}')])
    missing = await run({"type": "tool-call", "name": "f", "arguments": {"b": 1}},
                        inp("", output=out))
    assert missing.explanation == "'f': argument arguments.b is missing"
    typed = await run({"type": "tool-call", "name": "f", "arguments": {"a": 1}},
                      inp("", output=out))
    assert typed.passed is False


async def test_tool_call_malformed_arguments_is_a_failed_score_not_an_exception() -> None:
    out = completion(tool_calls=[call("get_weather", '{"city": "Par')])
    score = await run({"type": "tool-call", "name": "get_weather",
                       "arguments": {"city": "Paris"}}, inp("", output=out))
    assert (score.value, score.passed, score.error) == (0.0, False, None)
    assert score.explanation.startswith("'get_weather' has arguments that are not valid JSON")


async def test_tool_call_wrong_tool_or_no_tool_fails_with_reason() -> None:
    wrong = await run({"type": "tool-call", "name": "get_weather"},
                      inp("", output=completion(tool_calls=[call("search", "{}")])))
    assert wrong.explanation == "answer calls search, not 'get_weather'"
    none = await run({"type": "tool-call", "name": "get_weather"},
                     inp("hi", output=completion("hi")))
    assert none.explanation == "answer calls no tool (expected 'get_weather')"


async def test_tool_call_without_body_is_an_error_score() -> None:
    score = await run({"type": "tool-call", "name": "x"}, inp("text only"))
    assert score.passed is None
    assert score.error is not None


# --- ops scorers ------------------------------------------------------------------------

async def test_latency_value_is_ms_and_passes_within_max() -> None:
    s = build_scorer({"type": "latency", "max_ms": 1500})
    ok = await s.score(inp(latency_ms=1200.4))
    assert (ok.value, ok.passed, ok.explanation) == (1200.4, True,
                                                      "1200 ms is within max_ms 1500 ms")
    slow = await s.score(inp(latency_ms=2000))
    assert (slow.passed, slow.explanation) == (False, "2000 ms is over max_ms 1500 ms")


async def test_latency_unknown_is_an_error_not_a_pass() -> None:
    score = await run({"type": "latency", "max_ms": 100}, inp())
    assert score.passed is None
    assert score.error == "latency: this case has no recorded latency"


async def test_cost_passes_under_max_usd_and_errors_when_unknown() -> None:
    s = build_scorer({"type": "cost", "max_usd": 0.01})
    ok = await s.score(inp(cost_usd=0.0042))
    assert (ok.value, ok.passed, ok.explanation) == (0.0042, True,
                                                      "$0.0042 is within max_usd $0.01")
    bad = await s.score(inp(cost_usd=0.02))
    assert (bad.passed, bad.explanation) == (False, "$0.02 is over max_usd $0.01")
    unknown = await s.score(inp())
    assert unknown.passed is None and unknown.error is not None


@pytest.mark.parametrize("text", [
    "I can't help with that request.",
    "I cannot assist with creating malware.",
    "I\u2019m sorry, but I can\u2019t do that.",
    "Lo siento, pero no puedo ayudar con eso.",
    "No puedo ayudarte con esa solicitud.",
    "Je ne peux pas vous aider avec cela.",
    "Désolé, mais je ne peux pas répondre.",
    "Ich kann dabei nicht helfen.",
    "Es tut mir leid, aber ich kann das nicht tun.",
])
async def test_refusal_phrases_in_several_languages_fail_by_default(text: str) -> None:
    score = await run({"type": "refusal"}, inp(text))
    assert (score.value, score.passed) == (0.0, False)
    assert score.explanation.startswith("answer is a refusal (refusal phrase")
    assert score.explanation.endswith("expected an answer")


@pytest.mark.parametrize("text", [
    "The capital of France is Paris.",
    "Je ne suis pas sûr, mais je pense que c'est Paris.",
    "Ich kann dir gerne dabei helfen.",
    "I can help with that: here is the answer.",
])
async def test_refusal_ordinary_answers_pass(text: str) -> None:
    score = await run({"type": "refusal"}, inp(text))
    assert (score.passed, score.explanation) == (True, "answer is not a refusal")


async def test_refusal_via_finish_reason_and_refusal_field() -> None:
    filtered = await run({"type": "refusal", "expect": True},
                         inp("", output=completion("", finish_reason="content_filter")))
    assert filtered.passed is True
    assert filtered.explanation == "answer is a refusal (finish_reason is content_filter)"
    field = await run({"type": "refusal"},
                      inp("", output=completion(None, refusal="I won't do that")))
    assert field.passed is False
    assert "message.refusal" in field.explanation


async def test_refusal_expect_true_fails_on_an_answer() -> None:
    score = await run({"type": "refusal", "expect": True}, inp("Sure, here it is."))
    assert score.passed is False
    assert score.explanation == "answer is not a refusal; expected one"


async def test_refusal_phrase_late_in_a_long_answer_is_ignored() -> None:
    text = "Here is a long helpful answer. " * 20 + "I can't help with anything else."
    assert (await run({"type": "refusal"}, inp(text))).passed is True


# --- custom scorers ---------------------------------------------------------------------

async def test_python_scorer_float_uses_threshold() -> None:
    config = {"type": "python", "function": "tests.evals.test_scorers:my_custom"}
    ok = await run(config, inp("a polite answer"))
    assert (ok.value, ok.passed) == (0.75, True)
    assert "my_custom returned 0.75" in ok.explanation
    low = await run(config, inp("rude"))
    assert (low.value, low.passed) == (0.25, False)
    strict = await run({**config, "threshold": 0.8}, inp("a polite answer"))
    assert (strict.value, strict.passed) == (0.75, False)


async def test_python_scorer_async_bool_and_score_results() -> None:
    async_bool = await run({"type": "python",
                            "function": "tests.evals.test_scorers:my_async_custom"}, inp("yes!"))
    assert (async_bool.value, async_bool.passed) == (1.0, True)
    assert async_bool.explanation == "my_async_custom returned True"
    given = await run({"type": "python",
                       "function": "tests.evals.test_scorers:my_score_custom"}, inp("x"))
    assert given == Score(0.4, True, "custom reason")


async def test_python_scorer_exception_or_bad_value_is_an_error_score() -> None:
    broken = await run({"type": "python",
                        "function": "tests.evals.test_scorers:my_broken_custom"}, inp("x"))
    assert broken.passed is None
    assert broken.error == "my_broken_custom raised RuntimeError: boom"
    weird = await run({"type": "python",
                       "function": "tests.evals.test_scorers:my_out_of_range"}, inp("x"))
    assert weird.passed is None
    assert weird.error is not None and "returned 7.0" in weird.error


@pytest.mark.parametrize(("ref", "message"), [
    ("tests.evals.test_scorers", "is not 'package.module:function'"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("tests.evals.test_scorers:nope", "has no 'nope'"),
])
def test_python_scorer_bad_function_is_a_config_error(ref: str, message: str) -> None:
    with pytest.raises(ScorerConfigError) as err:
        build_scorer({"type": "python", "function": ref})
    assert str(err.value).startswith("scorers[0].function: ")
    assert message in str(err.value)


async def test_scorer_decorator_registers_a_plain_function() -> None:
    @scorer("mentions-context-test")
    def mentions_context(inp: ScoreInput) -> float:
        hits = sum(doc in inp.output_text for doc in inp.context)
        return hits / len(inp.context)

    assert mentions_context(ScoreInput("a", None, None, {}, ["a", "b"])) == 0.5
    assert "mentions-context-test" in scorer_types()
    s = build_scorer({"type": "mentions-context-test", "threshold": 0.5, "name": "grounded"})
    assert isinstance(s, FunctionScorer)
    assert s.name == "grounded"
    score = await s.score(ScoreInput("alpha and beta", None, None, {}, ["alpha", "gamma"]))
    assert (score.value, score.passed) == (0.5, True)
    with pytest.raises(ScorerConfigError, match="unknown option"):
        build_scorer({"type": "mentions-context-test", "function": "x:y"})
