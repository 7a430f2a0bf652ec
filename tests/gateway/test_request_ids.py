"""Every answer names its request: ``x-request-id`` (the OpenAI SDK's ``_request_id``), and
``request-id`` on ``/v1/messages`` (the Anthropic SDK's); the client's own ``X-Request-ID``
is echoed when usable, and the trace is found by it."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from keel.store.traces import TraceFilter, list_traces
from tests.gateway.conftest import Upstreams, stored_trace
from tests.support.keel import Keel

USER: Any = [{"role": "user", "content": "Where is my parcel?"}]


def _openai(k: Keel, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=k.base_url, api_key=k.admin_key, max_retries=0,
                         default_headers=headers or None)


def _anthropic(k: Keel, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=k.url, api_key=k.admin_key, max_retries=0,
                               default_headers=headers or None)


def _traces_with(k: Keel, rid: str) -> list[dict[str, Any]]:
    k.flush()
    rows, _ = k.run(list_traces(k.state.store, TraceFilter(request_id=rid)))
    return list(rows)


@pytest.mark.parametrize("model", ["mock", "gpt"])
def test_a_chat_answer_carries_a_generated_request_id_stored_on_its_trace(
        keel_two: Keel, fakes: Upstreams, model: str) -> None:
    raw = _openai(keel_two).chat.completions.with_raw_response.create(model=model,
                                                                      messages=USER)
    answer = raw.parse()
    rid = answer._request_id
    trace_id = raw.headers["x-keel-trace-id"]
    assert rid == raw.headers["x-request-id"] == f"req_{trace_id}"
    assert stored_trace(keel_two, trace_id)["request_id"] == rid
    assert [t["id"] for t in _traces_with(keel_two, rid)] == [trace_id]


def test_the_clients_request_id_is_echoed_and_finds_the_trace(keel_two: Keel,
                                                               fakes: Upstreams) -> None:
    c = _openai(keel_two, **{"X-Request-ID": "checkout-7f3a-0001"})
    answer = c.chat.completions.create(model="gpt", messages=USER)
    assert answer._request_id == "checkout-7f3a-0001"
    (trace,) = _traces_with(keel_two, "checkout-7f3a-0001")
    assert trace["model_requested"] == "gpt" and trace["status"] == 200
    listed = httpx.get(keel_two.url + "/api/traces", headers=keel_two.admin_headers(),
                       params={"request_id": "checkout-7f3a-0001"}).json()["data"]
    assert [t["id"] for t in listed] == [trace["id"]]


def test_a_stream_carries_the_request_id(keel_two: Keel, fakes: Upstreams) -> None:
    c = _openai(keel_two, **{"X-Request-ID": "stream-42"})
    with c.chat.completions.with_streaming_response.create(
            model="gpt", messages=USER, stream=True) as resp:
        assert resp.headers["x-request-id"] == "stream-42"
        assert "".join(resp.iter_lines())
    assert len(_traces_with(keel_two, "stream-42")) == 1


def test_an_error_carries_the_request_id(keel_two: Keel, fakes: Upstreams) -> None:
    c = _openai(keel_two, **{"X-Request-ID": "err-1"})
    with pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="no-such-model", messages=USER)
    assert info.value.request_id == "err-1"
    (trace,) = _traces_with(keel_two, "err-1")
    assert trace["status"] == 404


@pytest.mark.parametrize("sent", [b"x" * 129, "caf\u00e9".encode(), b"a\tb"])
def test_an_unusable_request_id_is_replaced_by_keels_own(keel_two: Keel, sent: bytes) -> None:
    r = httpx.post(f"{keel_two.base_url}/chat/completions",
                   headers=[(b"authorization", f"Bearer {keel_two.admin_key}".encode()),
                            (b"x-request-id", sent)],
                   json={"model": "mock", "messages": USER})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "req_" + r.headers["x-keel-trace-id"]


def test_messages_answers_carry_request_id_for_the_anthropic_sdk(keel_two: Keel,
                                                                  fakes: Upstreams) -> None:
    msg = _anthropic(keel_two, **{"X-Request-ID": "ant-1"}).messages.create(
        model="claude", max_tokens=20, messages=USER)
    assert msg._request_id == "ant-1"
    with pytest.raises(anthropic.NotFoundError) as info:
        _anthropic(keel_two).messages.create(model="nope", max_tokens=20, messages=USER)
    rid = info.value.request_id
    assert rid and rid.startswith("req_")
    assert isinstance(info.value.body, dict) and info.value.body["request_id"] == rid
    assert info.value.response.headers["x-request-id"] == rid
    with _anthropic(keel_two).messages.stream(model="claude", max_tokens=20,
                                             messages=USER) as stream:
        assert stream.response.headers["request-id"].startswith("req_")
        assert stream.get_final_message().content


def test_other_routes_carry_a_request_id_too(keel_two: Keel) -> None:
    c = _openai(keel_two, **{"X-Request-ID": "models-1"})
    raw = c.models.with_raw_response.list()
    assert raw.headers["x-request-id"] == "models-1"
    health = httpx.get(f"{keel_two.url}/health")
    assert health.headers["x-request-id"].startswith("req_")
    missing = httpx.get(f"{keel_two.url}/v1/nothing", headers={"x-request-id": "nf-1"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "nf-1"
    assert "request-id" not in missing.headers
