"""Property: no request, however malformed, makes keel answer with a 5xx.

Every route of the app's real route table is walked (a new route is covered without
editing this file) and sent, with the admin key to a live keel so the handlers themselves
run:

- every query parameter the route reads (found by watching which names its handler looks
  up) and every path parameter, each with each value of a list of known troublemakers
  (Unicode digits, 20-digit numbers, NaN, NUL, 5,000 characters...);
- its example body (for the routes that take one) with each field in turn replaced by a
  value of each JSON type, a huge one or one nested past the limit, or removed;
- generated requests (hypothesis): query strings, path parameters and bodies mixing all of
  the above with arbitrary JSON and broken bytes.

For each answer: the status is below 500, nothing says ``internal_error``, and an error has
the OpenAI shape (Anthropic's on ``/v1/messages*``) and a bounded size (the offending value
is quoted as an excerpt at most). The generated examples are derandomized (the same on
every run) and bounded per route; ``KEEL_TEST_FUZZ_FACTOR=20`` searches further.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.routing import Route

from keel.errors import KeelError
from keel.gateway import anthropic_format, gemini_format
from keel.gateway.validate import check_chat
from keel.server import app
from tests.server.test_roles import _flatten
from tests.support.keel import Keel, running_keel

MAX_ERROR_BYTES = 4096
FACTOR = float(os.environ.get("KEEL_TEST_FUZZ_FACTOR") or 1)
PARAM = re.compile(r"\{([^}:]+)(?::([a-z]+))?\}")


def all_routes() -> list[tuple[str, str, Any]]:
    """(method, path template, endpoint) of every route the app serves (HEAD aside)."""
    out = []
    for path, route in _flatten(app.routes()):
        assert isinstance(route, Route), f"{path}: only plain routes are walked, got {route!r}"
        out += [(m, path, route.endpoint) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


WALK = all_routes()
ROUTES = [(m, p) for m, p, _ in WALK]
# Routes that share a handler (/chat/completions and /v1/chat/completions) are swept once.
SWEPT = list({(m, id(e)): (m, p) for m, p, e in reversed(WALK)}.values())[::-1]

# --- valid examples: the fields each route reads, to mutate one at a time -------------------

# The gateway's keel: the offline mock provider, a cached route and guardrail policies on
# the examples' feature, so caching and scanning meet the generated bodies too.
GATEWAY_CONFIG: dict[str, Any] = {
    "providers": [{"name": "mock", "kind": "mock", "latency": {"p50_ms": 0}}],
    "models": [{"name": "mock", "provider": "mock"},
               {"name": "mock-embedding", "provider": "mock", "kind": "embedding"}],
    "routes": [{"name": "cached", "targets": [{"model": "mock"}], "cache": {"mode": "exact"}}],
    "policies": [{"name": "fuzz", "features": ["fuzz"],
                  "input": [{"scanner": "pii", "action": "redact"},
                            {"scanner": "secrets", "action": "block"},
                            {"scanner": "injection", "action": "flag"},
                            {"scanner": "unicode", "action": "flag"}],
                  "output": [{"scanner": "pii", "action": "redact"},
                             {"scanner": "tools", "allow": ["weather"], "action": "flag"}]}],
}

CHAT: dict[str, Any] = {
    "model": "cached",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "weather in Oslo?"},
                                     {"type": "image_url",
                                      "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "thanks", "name": "ann"},
    ],
    "tools": [{"type": "function", "function": {
        "name": "weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "response_format": {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": {"type": "object", "properties": {"t": {"type": "string"}}}}},
    "max_tokens": 50, "temperature": 0.5, "top_p": 1, "n": 1, "seed": 7, "stop": ["\n\n"],
    "stream": False, "stream_options": {"include_usage": True}, "user": "u-1",
    "metadata": {"feature": "fuzz", "session": "s-1"}, "parallel_tool_calls": True,
    "logit_bias": {"50256": -100}, "presence_penalty": 0, "frequency_penalty": 0,
}

MESSAGES: dict[str, Any] = {
    "model": "mock", "max_tokens": 50,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "weather in Oslo?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "checking"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ],
    "tools": [{"name": "weather", "description": "Weather",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "u-1", "feature": "fuzz"}, "stop_sequences": ["END"],
    "temperature": 0.5,
    "top_p": 1, "stream": False,
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
}

OTLP: dict[str, Any] = {"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
    "scopeSpans": [{"scope": {"name": "fuzz"}, "spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
        "name": "chat mock", "kind": 3, "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                       {"key": "gen_ai.request.model", "value": {"stringValue": "mock"}},
                       {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}],
        "status": {"code": 1}}]}]}]}

EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/chat/completions"): CHAT,
    ("POST", "/chat/completions"): CHAT,
    ("POST", "/v1/embeddings"): {"model": "mock-embedding", "input": ["a", "b"],
                                 "dimensions": 8, "encoding_format": "float", "user": "u"},
    ("POST", "/v1/messages"): MESSAGES,
    ("POST", "/v1/traces"): OTLP,
    ("POST", "/api/keys"): {"team": "t", "feature": "f", "models": ["mock"], "name": "n",
                            "feature_override": False, "role": "viewer"},
    ("POST", "/api/prompts"): {
        "name": "fuzz-reply", "model": "mock", "params": {"temperature": 0.2},
        "messages": [{"role": "system", "content": "Answer about {{topic}}."}],
        "message": "first", "author": "ann"},
    ("PUT", "/api/prompts/{name}/labels/{label}"): {"version": 1, "actor": "ann",
                                                    "reason": "ship"},
    ("POST", "/api/prompts/{name}/labels/{label}/rollback"): {"actor": "ann", "reason": "x"},
    ("POST", "/api/feedback"): {"trace_id": "0" * 32, "thumbs": "up", "source": "user",
                                "outcome": "edited", "corrected_text": "better",
                                "score": {"name": "helpful", "value": 0.5},
                                "critical_error": True, "critical_category": "pii",
                                "comment": "ok", "id": "fb-1"},
    ("POST", "/api/outcomes"): {"name": "ticket_resolved", "feature": "fuzz", "value": 2.0,
                                "trace_ids": ["0" * 32], "at": 1700000000, "id": "oc-1"},
    ("POST", "/api/costs/reprice"): {"model": "mock", "since": "7d", "until": 1700000000,
                                     "dry_run": True, "actor": "ann"},
    ("POST", "/api/features/{name}/{verb}"): {"reason": "incident 7"},
    ("POST", "/api/reviews/{review_id}/decision"): {"decision": "edit", "reason": "r",
                                                    "content": "c"},
}


def _field_names(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {n for v in value.values() for n in _field_names(v)}
    if isinstance(value, list):
        return {n for v in value for n in _field_names(v)}
    return set()


FIELD_NAMES = sorted(set().union(*(_field_names(b) for b in EXAMPLES.values())))
QUERY_NAMES = ["limit", "cursor", "since", "until", "from", "to", "status", "feature",
               "team", "model", "key_id", "after", "group_by", "format", "trace_id",
               "action", "name", "suite", "group", "prompt"]

# --- generated values ---------------------------------------------------------------------

NASTY = ["", "0", "-1", "1", "50", "501", "²", "٣", "\U0001d7d9", "99999999999999999999",
         "1" * 400, "1e400", "-1e400", "nan", "inf", "1.5", "0x10", " 7", "7d", "-7d",
         "99999999999d", "2026-11-01", "2026-13-45", "0001-01-01T00:00", "9999-12-31T23:59Z",
         "ok", "error", "failed", "feature,model", "day,,day", "a:b", "1:2", ":", "json",
         "csv", "x" * 5000, "\x00", "a\x00b", "\n", "é", "\ud7ff", "🙂" * 300, "../..", "%",
         "null", "[]", "{}", "true", "mock", "mock@1", "mock@²", "fuzz-reply@latest"]
texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=24))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), texts),
                                            inner, max_size=4)),
    max_leaves=12)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*here, i))


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


@st.composite
def mutated(draw: st.DrawFn, example: dict[str, Any]) -> Any:
    """``example`` with one place replaced by any JSON value, removed, or given a new key."""
    body = _copy(example)
    path = draw(st.sampled_from(list(_paths(body))))
    op = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
    if not path:
        return draw(json_values) if op == "replace" else body
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "remove":
        del parent[last]
    elif op == "add" and isinstance(parent[last], dict):
        parent[last][draw(st.one_of(st.sampled_from(FIELD_NAMES), texts))] = draw(json_values)
    else:
        parent[last] = draw(json_values)
    return body


def _nested(depth: int, inner: str) -> str:
    return '{"a":' * depth + inner + "}" * depth


@st.composite
def raw_bodies(draw: st.DrawFn, example: dict[str, Any]) -> bytes:
    kind = draw(st.sampled_from(["json", "json", "json", "deep", "bytes", "cut", "literal"]))
    if kind == "json":
        value = draw(st.one_of(mutated(example), json_values,
                               st.dictionaries(st.sampled_from(FIELD_NAMES), json_values,
                                               max_size=6)))
        return json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "deep":  # inside a field the route reads, or anywhere
        depth = draw(st.sampled_from([63, 64, 65, 100, 254, 255, 300, 1023, 1024, 1100]))
        body = _copy(example)
        field = draw(st.sampled_from([*list(body), "extra"]))
        return json.dumps({**body, field: "@@"}).replace('"@@"', _nested(depth, "1")).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=48))
    if kind == "cut":
        text = json.dumps(example).encode()
        return text[:draw(st.integers(0, max(len(text) - 1, 0)))]
    return draw(st.sampled_from([b"null", b"[]", b"1", b'"x"', b"NaN", b"[1e400]",
                                 b'{"a": "\\ud800"}', b'{"model": 1e999}', b"{", b"\xff\xfe"]))


@st.composite
def queries(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:  # raw, possibly broken percent-encoding
        return draw(st.sampled_from(["limit=%ff", "a=%00", "=%", "limit=%C2%B2", "%%%",
                                     "status=%E2%80%8B", "limit=1&limit=2&limit=%C2%B2"]))
    items = draw(st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_NAMES), texts), texts),
                          max_size=5))
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}"
                    for k, v in items)


def _segment(value: str, kind: str | None) -> str:
    return quote(value, safe="/" if kind == "path" else "", errors="surrogatepass") or "x"


@st.composite
def requests(draw: st.DrawFn, method: str, template: str) -> tuple[str, bytes | None, dict[str, str]]:
    path = PARAM.sub(lambda m: _segment(draw(texts), m.group(2)), template)
    query = draw(queries())
    url = path + (f"?{query}" if query else "")
    headers = {"content-type": draw(st.sampled_from(
        ["application/json", "application/json", "application/x-protobuf", "text/plain"]))}
    if draw(st.integers(0, 9)) == 0:
        headers["content-encoding"] = draw(st.sampled_from(["gzip", "br", "identity"]))
    if method in ("GET", "DELETE", "OPTIONS"):
        return url, None, headers
    return url, draw(raw_bodies(EXAMPLES.get((method, template), {}))), headers


# --- checking an answer ---------------------------------------------------------------------


def problem(method: str, url: str, body: bytes | None, r: httpx.Response) -> str | None:
    """What is wrong with the answer ``r``, or None."""
    sent = f"{method} {url[:200]} body={(body or b'')[:200]!r}"
    if r.status_code >= 500:
        return f"{sent}\n  -> {r.status_code} {r.text[:500]}"
    streamed = r.headers.get("content-type", "").startswith("text/event-stream")
    if (r.status_code >= 400 or streamed) and b"internal_error" in r.content:
        return f"{sent}\n  -> internal_error in {r.text[:500]}"  # in a stream: mid-way
    if r.status_code < 400:
        return None
    if len(r.content) >= MAX_ERROR_BYTES:
        return f"{sent}\n  -> a {len(r.content)}-byte error: {r.text[:300]}"
    try:
        err = r.json()
        if url.startswith("/v1/messages"):
            ok = (err["type"] == "error" and set(err) <= {"type", "error", "request_id"}
                  and set(err["error"]) == {"type", "message"})
        else:
            ok = (set(err) == {"error"}
                  and set(err["error"]) == {"message", "type", "param", "code"}
                  and isinstance(err["error"]["param"], str | None))
        ok = ok and isinstance(err["error"]["message"], str) and bool(err["error"]["message"])
    except (ValueError, KeyError, TypeError):
        ok = False
    return None if ok else f"{sent}\n  -> not an error of the expected shape: {r.text[:300]}"


def assert_all_well_formed(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} bad answer(s):\n" + "\n".join(problems[:20])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Keel]]:
    """Two keels: one for the gateway routes, one for /api (whose writes, such as stopping
    a feature, must not change what the gateway examples meet)."""
    with pytest.MonkeyPatch.context() as mp:  # the per-test isolation comes too late here
        for name in [n for n in os.environ if n.startswith("KEEL_")
                     and not n.startswith("KEEL_TEST_")]:
            mp.delenv(name)
        # Module-scoped, so the autouse XDG isolation is not there yet either: a directory
        # of its own, so no user-level config or store is read.
        xdg = tmp_path_factory.mktemp("xdg")
        mp.setenv("XDG_CONFIG_HOME", str(xdg / "config"))
        mp.setenv("XDG_DATA_HOME", str(xdg / "data"))
        # Generated trace ids name no trace: feedback on one waits KEEL_FEEDBACK_WAIT_S.
        with running_keel(tmp_path_factory.mktemp("gw"), GATEWAY_CONFIG,
                          max_body_bytes=256 * 1024) as gw, \
                running_keel(tmp_path_factory.mktemp("api"), feedback_wait_s=0.2) as api:
            yield {"gateway": gw, "api": api}


@pytest.fixture
def client(servers: dict[str, Keel], request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client of the keel for this test's route, with the admin key."""
    template = request.node.callspec.params["template"]
    k = servers["api" if template.startswith("/api") else "gateway"]
    with httpx.Client(base_url=k.url, timeout=30,
                      headers={"authorization": f"Bearer {k.admin_key}",
                               "content-type": "application/json"}) as c:
        yield c


def test_the_walk_sees_every_kind_of_route() -> None:
    seen = set(ROUTES)
    assert {("POST", "/v1/chat/completions"), ("POST", "/v1/messages"),
            ("POST", "/v1/embeddings"), ("GET", "/api/traces"), ("POST", "/api/feedback"),
            ("GET", "/api/metrics/summary"), ("POST", "/v1/traces")} <= seen
    missing = set(EXAMPLES) - seen
    assert not missing, f"examples for routes the app no longer serves: {missing}"


# --- sweeps: one bad thing at a time, everywhere ---------------------------------------------

QUERY_VALUES = ["²", "٣", "99999999999999999999", "-1", "0", "1e400", "nan", "-inf", "1.5",
                "x" * 5000, "\x00", "a\x00b", "é", "🙂" * 300, ",", ":", "1:²", "²:1",
                "9999999999:1", "0001-01-01", "9999-12-31T23:59:59-12:00", "99999999999999w"]
PATH_VALUES = ["²", "x" * 3000, "\x00", "%", "..", "a b", "é", "🙂", "99999999999999999999",
               "mock@²", "@", "a@b@c", "a/b"]
DEEP = {"@deep": True}
FIELD_VALUES: list[Any] = [None, True, 0, -1, 2**64, 1.5, "", "²", "x" * 5000, [], [1], {},
                           {"a": 1}, DEEP]


def _concrete(template: str, value: str = "dummy", which: str | None = None) -> str:
    def sub(m: re.Match[str]) -> str:
        return _segment(value, m.group(2)) if which in (None, m.group(1)) else "dummy"
    return PARAM.sub(sub, template)


def _encode(body: Any) -> bytes:
    text = json.dumps(body)
    return text.replace(json.dumps(DEEP), _nested(65, "1")).encode()


def _example(method: str, template: str) -> bytes | None:
    if method in ("GET", "DELETE", "OPTIONS"):
        return None
    return _encode(EXAMPLES.get((method, template), {}))


@pytest.fixture(scope="module")
def watched_names() -> Iterator[set[str]]:
    """The query parameter names handlers look up while the fixture is active (the servers
    run in this process, so their ``QueryParams`` are watched directly)."""
    names: set[str] = set()
    get, has = QueryParams.__getitem__, QueryParams.__contains__

    def watched_get(self: QueryParams, key: Any) -> Any:
        names.add(key)
        return get(self, key)

    def watched_has(self: QueryParams, key: Any) -> bool:
        names.add(key)
        return has(self, key)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(QueryParams, "__getitem__", watched_get)
        mp.setattr(QueryParams, "__contains__", watched_has)
        yield names


def _send(c: httpx.Client, method: str, url: str, body: bytes | None,
          problems: list[str]) -> None:
    r = c.request(method, url, content=body)
    found = problem(method, url, body, r)
    if found:
        problems.append(found)


@pytest.mark.parametrize(("method", "template"), SWEPT, ids=[f"{m} {p}" for m, p in SWEPT])
def test_no_bad_query_or_path_parameter_gets_a_5xx(
        client: httpx.Client, watched_names: set[str], method: str, template: str) -> None:
    body = _example(method, template)
    watched_names.clear()
    client.request(method, _concrete(template), content=body)
    names = sorted(watched_names)
    problems: list[str] = []
    for name in names:
        for value in QUERY_VALUES:
            _send(client, method, f"{_concrete(template)}?{name}={quote(value, safe='')}",
                  body, problems)
    for param in PARAM.findall(template):
        for value in PATH_VALUES:
            _send(client, method, _concrete(template, value, param[0]), body, problems)
    assert_all_well_formed(problems)


BODY_ROUTES = [r for r in SWEPT if r in EXAMPLES]


@pytest.mark.parametrize(("method", "template"), BODY_ROUTES,
                         ids=[f"{m} {p}" for m, p in BODY_ROUTES])
def test_no_bad_body_field_gets_a_5xx(client: httpx.Client, method: str,
                                      template: str) -> None:
    example = EXAMPLES[(method, template)]
    url = _concrete(template)
    if not template.startswith("/api"):  # the gateway's examples are answered, so each
        r = client.request(method, url, content=_encode(example))  # change meets what the
        assert r.status_code == 200, r.text  # handler does after its checks too
    problems: list[str] = []
    for path in list(_paths(example))[1:]:
        for value in [*FIELD_VALUES, "remove"]:
            body = _copy(example)
            parent = body
            for step in path[:-1]:
                parent = parent[step]
            if value == "remove":
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            _send(client, method, url, _encode(body), problems)
    assert_all_well_formed(problems)


# --- generated requests ----------------------------------------------------------------------


def _budget(method: str, template: str) -> int:
    base = 60 if (method, template) in EXAMPLES and not template.startswith("/api") else 15
    return max(1, int(base * FACTOR))


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_generated_request_gets_a_5xx(client: httpx.Client, method: str,
                                         template: str) -> None:
    @settings(max_examples=_budget(method, template), deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    @given(req=requests(method, template))
    def run(req: tuple[str, bytes | None, dict[str, str]]) -> None:
        url, body, headers = req
        found = problem(method, url, body, client.request(method, url, content=body,
                                                          headers=headers))
        assert found is None, found

    run()


# --- the provider adapters: what the gateway accepts, they translate or refuse with a 4xx ----


@settings(max_examples=max(1, int(300 * FACTOR)), deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(body=mutated(CHAT))
def test_every_accepted_chat_body_translates_or_is_refused_with_a_4xx(body: Any) -> None:
    if not isinstance(body, dict):
        return
    try:
        check_chat(body)
    except KeelError as exc:
        assert exc.status < 500
        return
    for translate in (anthropic_format.to_anthropic_request, gemini_format.to_gemini_request):
        try:
            translate(_copy(body))
        except KeelError as exc:
            assert exc.status < 500, exc
