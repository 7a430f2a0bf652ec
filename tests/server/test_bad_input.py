"""Bad input is a 4xx that names the parameter, never a 500: query parameters read by the one
reader of the admin API (ASCII digits only, bounded integers and times), body fields
type-checked before use on the gateway and the admin API, errors that quote an excerpt of
the value only, and the request nesting limit (``body_too_deep``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from keel.errors import excerpt
from keel.gateway.validate import MAX_DEPTH, nesting_depth_over
from tests.support.keel import Keel, running_keel

USER = [{"role": "user", "content": "hi"}]
MAX_ERROR_BYTES = 4096


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keel]:
    with pytest.MonkeyPatch.context() as mp:  # the per-test isolation comes too late here
        for name in [n for n in os.environ if n.startswith("KEEL_")
                     and not n.startswith("KEEL_TEST_")]:
            mp.delenv(name)
        with running_keel(tmp_path_factory.mktemp("bad-input")) as k:
            yield k


def get(k: Keel, path: str, **params: str) -> httpx.Response:
    return httpx.get(k.url + path, params=params, headers=k.admin_headers())


def post(k: Keel, path: str, body: Any = None, *, raw: bytes | None = None) -> httpx.Response:
    return httpx.post(k.url + path, content=raw if raw is not None else orjson.dumps(body),
                      headers={**k.admin_headers(), "content-type": "application/json"})


def openai_error(r: httpx.Response, status: int = 400, param: str | None = None,
                 ) -> dict[str, Any]:
    """The OpenAI-format error of ``r``, checked: status, shape, param, bounded size."""
    assert r.status_code == status, r.text
    assert len(r.content) < MAX_ERROR_BYTES, r.text[:300]
    err: dict[str, Any] = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["param"] == param, err
    return err


def anthropic_error(r: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert len(r.content) < MAX_ERROR_BYTES, r.text[:300]
    body = r.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    return dict(body["error"])


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def with_deep(body: dict[str, Any], field: str, depth: int) -> bytes:
    """``body`` with ``field`` nested ``depth`` objects deep (written by hand: no JSON
    library writes past a few hundred levels)."""
    text = orjson.dumps({**body, field: "@"}).decode()
    return text.replace('"@"', '{"a":' * depth + "1" + "}" * depth).encode()


# --- query parameters of the admin API ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/traces", "/api/audit", "/api/reviews", "/api/outcomes",
                                  "/api/evals/runs", "/api/evals/events", "/api/costs/events"])
@pytest.mark.parametrize("value", ["²", "٣", "99999999999999999999", "0", "-1"])
def test_a_limit_that_is_not_an_ascii_integer_in_range_is_400(
        keel: Keel, path: str, value: str) -> None:
    err = openai_error(get(keel, path, limit=value), param="limit")
    assert "'limit' must be an integer from 1 to" in err["message"]


@pytest.mark.parametrize("value", ["²", "99999999999999999999", "99", "600", "okay"])
def test_a_trace_status_that_is_not_ok_error_or_an_http_status_is_400(
        keel: Keel, value: str) -> None:
    err = openai_error(get(keel, "/api/traces", status=value), param="status")
    assert "ok, error or an HTTP status code" in err["message"]


def test_a_trace_status_filter_still_takes_ok_error_and_codes(keel: Keel) -> None:
    assert post(keel, "/v1/chat/completions", {"model": "mock", "messages": USER}
                ).status_code == 200
    keel.flush()
    for value, found in (("ok", True), ("200", True), ("error", False), ("404", False)):
        r = get(keel, "/api/traces", status=value)
        assert r.status_code == 200, r.text
        assert bool(r.json()["data"]) is found, value


@pytest.mark.parametrize(("path", "name"), [
    ("/api/metrics/summary", "to"), ("/api/metrics/summary", "from"),
    ("/api/costs/spend", "to"), ("/api/traces", "since"), ("/api/audit", "until"),
    ("/api/outcomes", "since"), ("/api/evals/events", "since")])
@pytest.mark.parametrize("value", ["99999999999999999999", "1e400", "nan", "-5", "²"])
def test_a_time_out_of_range_or_not_a_time_is_400(
        keel: Keel, path: str, name: str, value: str) -> None:
    err = openai_error(get(keel, path, **{name: value}), param=name)
    assert "1970 to the year 9999" in err["message"] or "is not a time" in err["message"]


def test_times_in_every_form_still_work(keel: Keel) -> None:
    for value in ("1700000000", "2026-11-01", "2026-11-01T12:00Z", "7d"):
        assert get(keel, "/api/metrics/summary", **{"from": value}).status_code == 200
        assert get(keel, "/api/traces", since=value).status_code == 200


@pytest.mark.parametrize("value", ["a\x00b", "x" * 300])
def test_a_filter_with_control_characters_or_longer_than_any_name_is_400(
        keel: Keel, value: str) -> None:
    openai_error(get(keel, "/api/traces", feature=value), param="feature")


# --- body fields: the gateway -------------------------------------------------------------------


@pytest.mark.parametrize("role", [{"a": 1}, ["user"], 5, None])
def test_a_message_role_of_the_wrong_type_is_400_naming_it(keel: Keel, role: Any) -> None:
    body = {"model": "mock", "messages": [{"role": "user", "content": "x"},
                                          {"role": role, "content": "y"}]}
    err = openai_error(post(keel, "/v1/chat/completions", body), param="messages[1].role")
    assert "must be one of" in err["message"]


@pytest.mark.parametrize(("calls", "param"), [
    (5, "messages[0].tool_calls"), ({"id": "x"}, "messages[0].tool_calls"),
    ([5], "messages[0].tool_calls[0]"),
    ([{"id": "c", "type": "function", "function": "weather"}],
     "messages[0].tool_calls[0].function"),
    ([{"id": "c", "type": "function", "function": {"name": 1}}],
     "messages[0].tool_calls[0].function.name")])
def test_tool_calls_of_the_wrong_type_are_400_naming_the_field(
        keel: Keel, calls: Any, param: str) -> None:
    for content in (None, "checking"):
        body = {"model": "mock", "messages": [
            {"role": "assistant", "content": content, "tool_calls": calls}, *USER]}
        openai_error(post(keel, "/v1/chat/completions", body), param=param)


@pytest.mark.parametrize(("field", "value", "param"), [
    ("tool_choice", {"type": "function", "function": "weather"}, "tool_choice.function"),
    ("tool_choice", ["auto"], "tool_choice"),
    ("response_format", {"type": "json_schema", "json_schema": "x"},
     "response_format.json_schema"),
    ("response_format", {"type": ["text"]}, "response_format.type"),
    ("stream_options", {"include_usage": "yes"}, "stream_options.include_usage"),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": [1]}}],
     "tools[0].function.parameters"),
])
def test_other_chat_fields_of_the_wrong_type_are_400_naming_them(
        keel: Keel, field: str, value: Any, param: str) -> None:
    body = {"model": "mock", "messages": USER, field: value}
    openai_error(post(keel, "/v1/chat/completions", body), param=param)


def test_content_parts_of_the_wrong_type_are_400(keel: Keel) -> None:
    for parts, param in (([5], "messages[0].content[0]"),
                         ([{"type": "text", "text": 5}], "messages[0].content[0].text"),
                         ([{"type": 5}], "messages[0].content[0].type"),
                         ([{"type": "image_url", "image_url": 5}],
                          "messages[0].content[0].image_url")):
        body = {"model": "mock", "messages": [{"role": "user", "content": parts}]}
        openai_error(post(keel, "/v1/chat/completions", body), param=param)


def test_a_tool_schema_of_any_shape_does_not_break_the_mock_provider(keel: Keel) -> None:
    for schema in ({"type": "object", "properties": [1, 2]}, {"enum": {"a": 1}},
                   {"type": "integer", "minimum": "one"}):
        body = {"model": "mock", "messages": USER, "tool_choice": "required",
                "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}
        r = post(keel, "/v1/chat/completions", body)
        assert r.status_code == 200, (schema, r.text)


def test_the_anthropic_api_refuses_a_tool_choice_type_of_the_wrong_type(keel: Keel) -> None:
    body = {"model": "mock", "max_tokens": 5, "messages": USER, "tool_choice": {"type": []}}
    err = anthropic_error(post(keel, "/v1/messages", body))
    assert err["type"] == "invalid_request_error" and "tool_choice" in err["message"]


def test_an_error_quotes_only_an_excerpt_of_the_offending_value(keel: Keel) -> None:
    huge = "u" * 100_000
    body = {"model": "mock", "messages": [{"role": huge, "content": "x"}]}
    err = openai_error(post(keel, "/v1/chat/completions", body), param="messages[0].role")
    assert "(100000 characters)" in err["message"] and len(err["message"]) < 400
    anthropic = {"model": "mock", "max_tokens": 5,
                 "messages": [{"role": "user", "content": [{"type": huge}]}]}
    assert len(anthropic_error(post(keel, "/v1/messages", anthropic))["message"]) < 400
    err = openai_error(get(keel, "/api/traces", status=huge[:5000]), param="status")
    assert "(5000 characters)" in err["message"]


# --- body fields: the admin API -----------------------------------------------------------------


def test_feedback_thumbs_of_the_wrong_type_is_400_naming_it(keel: Keel) -> None:
    for thumbs in ([1], {"up": True}, True, 2):
        err = openai_error(post(keel, "/api/feedback", {"trace_id": "0" * 32, "thumbs": thumbs}),
                           param="thumbs")
        assert "must be \"up\", \"down\", 1 or -1" in err["message"]


@pytest.mark.parametrize(("body", "param"), [
    ({"trace_id": "0" * 32, "outcome": ["accepted"]}, "outcome"),
    ({"trace_id": "0" * 32, "source": {"a": 1}}, "source"),
    ({"trace_id": "0" * 32, "edit_distance": 2**40}, "edit_distance"),
    ({"trace_id": "0" * 32, "comment": "a\x00b"}, "comment"),
])
def test_other_feedback_fields_of_the_wrong_type_are_400(
        keel: Keel, body: dict[str, Any], param: str) -> None:
    openai_error(post(keel, "/api/feedback", body), param=param)


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "mock", "since": 1e20}, "since"), ({"model": "mock", "since": "1e400"}, "since"),
    ({"model": "mock", "since": "7d", "until": [1]}, "until"),
    ({"model": ["mock"], "since": "7d"}, "model"),
])
def test_reprice_times_and_names_are_checked(
        keel: Keel, body: dict[str, Any], param: str) -> None:
    openai_error(post(keel, "/api/costs/reprice", body), param=param)


def test_key_names_are_bounded_to_their_columns(keel: Keel) -> None:
    openai_error(post(keel, "/api/keys", {"team": "t" * 129}), param="team")
    openai_error(post(keel, "/api/keys", {"team": "ops", "name": "n" * 129}), param="name")
    openai_error(post(keel, "/api/keys", {"team": "a\x00b"}), param="team")


def test_a_prompt_version_in_unicode_digits_is_not_a_500(keel: Keel) -> None:
    spec = {"name": "greet", "model": "mock", "messages": [{"role": "user", "content": "hi"}]}
    assert post(keel, "/api/prompts", spec).status_code == 201
    r = get(keel, "/api/prompts/greet@²")
    assert r.status_code == 404 and r.json()["error"]["code"] == "prompt_label_not_found", r.text
    r = post(keel, "/v1/chat/completions", {"prompt": "greet@²"})
    openai_error(r, param="prompt")


# --- the nesting limit ----------------------------------------------------------------------------


def test_nesting_depth_counts_objects_and_arrays() -> None:
    assert not nesting_depth_over(1, 0) and not nesting_depth_over({}, 1)
    assert nesting_depth_over({}, 0) and nesting_depth_over([[]], 1)
    assert not nesting_depth_over({"a": [1, {"b": "x"}], "c": []}, 3)
    assert nesting_depth_over({"a": [1, {"b": []}]}, 3)
    assert not nesting_depth_over(nested(MAX_DEPTH), MAX_DEPTH)
    assert nesting_depth_over(nested(MAX_DEPTH + 1), MAX_DEPTH)
    assert nesting_depth_over([nested(10), nested(MAX_DEPTH + 1)], MAX_DEPTH)


@pytest.mark.parametrize("depth", [MAX_DEPTH, 254, 300, 1023])  # the body's own level: +1
def test_a_body_nested_past_the_limit_is_400_before_it_is_answered(
        keel: Keel, depth: int) -> None:
    raw = with_deep({"model": "mock", "messages": USER}, "logit_bias", depth)
    refused = post(keel, "/v1/chat/completions", raw=raw)
    err = openai_error(refused)
    assert err["code"] == "body_too_deep" and f"more than {MAX_DEPTH} levels" in err["message"]
    after = post(keel, "/v1/chat/completions", {"model": "mock", "messages": USER})
    assert after.status_code == 200
    keel.flush()  # both are recorded: the refusal (without the body) and the next answer
    for r in (refused, after):
        trace = get(keel, f"/api/traces/{r.headers['x-keel-trace-id']}")
        assert trace.status_code == 200, trace.text
        assert trace.json()["status"] == r.status_code


def test_a_body_at_the_limit_is_answered(keel: Keel) -> None:
    raw = with_deep({"model": "mock", "messages": USER}, "logit_bias", MAX_DEPTH - 1)
    assert post(keel, "/v1/chat/completions", raw=raw).status_code == 200


def test_past_what_the_parser_reads_it_is_still_a_400(keel: Keel) -> None:
    raw = b'{"model": "mock", "messages": [], "x": ' + b"[" * 1100 + b"]" * 1100 + b"}"
    err = openai_error(post(keel, "/v1/chat/completions", raw=raw))
    assert "not valid JSON" in err["message"]


def test_the_nesting_limit_holds_on_the_anthropic_api_and_the_admin_api(keel: Keel) -> None:
    body = {"model": "mock", "max_tokens": 5, "messages": USER, "metadata": {"user_id": "u"}}
    err = anthropic_error(post(keel, "/v1/messages", raw=with_deep(body, "x", 300)))
    assert f"{MAX_DEPTH} levels" in err["message"]
    spec = {"name": "deep", "model": "mock", "messages": USER, "params": nested(MAX_DEPTH)}
    assert openai_error(post(keel, "/api/prompts", spec))["code"] == "body_too_deep"


# --- the excerpt helper -------------------------------------------------------------------------


def test_an_excerpt_is_short_whatever_the_value() -> None:
    assert excerpt("abc") == "'abc'"
    assert excerpt("x" * 1000) == repr("x" * 40) + "... (1000 characters)"
    assert excerpt(None) == "null" and excerpt(True) == "true" and excerpt(1.5) == "1.5"
    assert excerpt({"a": 1, "b": 2}) == "an object with 2 keys"
    assert excerpt(list(range(10**5))) == "an array of 100000 items"
    assert len(excerpt(10**4000)) < 80


# --- PostgreSQL refuses NUL in text: it must be a 400 before it gets there -------------------


@pytest.mark.postgres
def test_nul_in_names_and_filters_is_400_on_postgresql(
        tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> None:
    with running_keel(tmp_path_factory.mktemp("pg"), database_url=postgres_url) as k:
        openai_error(get(k, "/api/traces", feature="a\x00b"), param="feature")
        openai_error(get(k, "/api/outcomes", name="a\x00b"), param="name")
        openai_error(post(k, "/api/keys", {"team": "a\x00b"}), param="team")
        openai_error(post(k, "/api/feedback", {"trace_id": "0" * 32, "thumbs": "up",
                                               "comment": "a\x00b"}), param="comment")
        openai_error(httpx.get(k.url + "/api/traces/a%00b", headers=k.admin_headers()),
                     param="trace_id")


@pytest.mark.parametrize(("extra", "param"), [
    ({"logprobs": "yes"}, "logprobs"), ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": 2.5}, "top_logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"), ({"logprobs": False, "top_logprobs": 3},
                                            "top_logprobs")])
def test_logprobs_options_are_checked_for_every_model(keel: Keel, extra: dict[str, Any],
                                                      param: str) -> None:
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}], **extra}
    err = openai_error(post(keel, "/v1/chat/completions", body), param=param)
    assert param in err["message"]
