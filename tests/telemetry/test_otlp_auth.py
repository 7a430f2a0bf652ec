"""Who may write through ``POST /v1/traces``, and what ingested spans are attributed to.

The same rules as the gateway: a key with a role (for the admin API) and a feedback key are
refused with the gateway's errors; the team is the key's; a key bound to a feature may
report only that one, unless created with ``feature_override``. A refused batch stores
nothing, so no refused caller can add spend to a team. On SQLite and PostgreSQL, against a
live keel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.store.traces import TraceFilter, count_traces
from keel.types import ROLES
from tests.support.keel import Keel, running_keel
from tests.telemetry.test_otel import CONFIG, json_request, json_span

APP = "https://app.example.com"
CHAT = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def keel(tmp_path: Path, database_url: str) -> Iterator[Keel]:
    with running_keel(tmp_path, CONFIG, database_url=database_url) as k:
        yield k


def spend_span(span_id: str, **attrs: Any) -> dict[str, Any]:
    """An LLM call with a price: 1M input tokens of ``mock`` cost $3."""
    return json_span(span_id, {"gen_ai.request.model": "mock",
                               "gen_ai.usage.input_tokens": 1_000_000, **attrs})


def ingest(k: Keel, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{k.url}/v1/traces", content=json.dumps(body).encode(), headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"})


def chat(k: Keel, key: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{k.base_url}/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {key}", **headers})


def stored(k: Keel, *, team: str, feature: str | None = None) -> int:
    k.flush()
    return int(k.run(count_traces(k.state.store, TraceFilter(team=team, feature=feature))))


def error(r: httpx.Response) -> dict[str, Any]:
    return dict(r.json()["error"])


def test_role_keys_are_refused_like_the_gateway_refuses_them(keel: Keel) -> None:
    for role in ROLES:
        # org-wide: an auditor key can only be (the audit log spans every team)
        key = keel.create_key(team="cx", role=role, org_wide=True)
        r = ingest(keel, key, json_request(spend_span(f"{ROLES.index(role) + 1:016x}")))
        assert r.status_code == 403, (role, r.text)
        err = error(r)
        assert err["code"] == "role_key_not_for_gateway", (role, err)
        assert f"'{role}' role" in err["message"] and "gateway key" in err["message"]
        # the very error the gateway gives the same key
        assert error(chat(keel, key))["code"] == err["code"]
    assert stored(keel, team="cx") == 0  # no spend written for the team


def test_a_feedback_key_may_not_write_spans(keel: Keel) -> None:
    key = keel.create_key(team="cx", scope="feedback", origins=[APP])
    r = ingest(keel, key, json_request(spend_span("00000000000000a1")))
    assert r.status_code == 403 and error(r)["code"] == "feedback_only_key"
    assert "/api/feedback" in error(r)["message"]
    assert stored(keel, team="cx") == 0


def test_a_bound_key_may_not_report_another_feature(keel: Keel) -> None:
    key = keel.create_key(team="ops", feature="triage")
    # the gateway's refusal of the same claim (with a key of another team: the gateway
    # stores a trace of the refused request)
    bound_elsewhere = keel.create_key(team="web", feature="triage")
    gateway = chat(keel, bound_elsewhere, **{"x-keel-feature": "billing"})
    assert gateway.status_code == 403
    # one span for another feature refuses the whole batch, with the gateway's error
    body = json_request(spend_span("00000000000000b1"),
                        spend_span("00000000000000b2", **{"keel.feature": "billing"}))
    r = ingest(keel, key, body)
    assert r.status_code == 403, r.text
    assert error(r)["code"] == error(gateway)["code"] == "feature_not_allowed"
    assert "'triage'" in error(r)["message"] and "'billing'" in error(r)["message"]
    # the feature named on the resource (every span of it) is checked too
    resource_level = json_request(spend_span("00000000000000b3"))
    resource_level["resourceSpans"][0]["resource"]["attributes"].append(
        {"key": "keel.feature", "value": {"stringValue": "billing"}})
    r = ingest(keel, key, resource_level)
    assert r.status_code == 403 and error(r)["code"] == "feature_not_allowed"
    assert stored(keel, team="ops") == 0

    # its own feature, named or not (service.name does not count as naming one)
    body = json_request(spend_span("00000000000000b4"),
                        spend_span("00000000000000b5", **{"keel.feature": "triage"}))
    assert ingest(keel, key, body).status_code == 200
    assert stored(keel, team="ops", feature="triage") == 2
    assert stored(keel, team="ops") == 2


def test_an_override_key_reports_any_feature_and_the_team_is_the_keys(keel: Keel) -> None:
    key = keel.create_key(team="ops", feature="triage", feature_override=True)
    body = json_request(
        spend_span("00000000000000c1", **{"keel.feature": "billing", "keel.team": "growth"}),
        spend_span("00000000000000c2"))
    r = ingest(keel, key, body)
    assert r.status_code == 200, r.text
    assert stored(keel, team="ops", feature="billing") == 1
    assert stored(keel, team="ops", feature="triage") == 1  # unnamed: the key's feature
    assert stored(keel, team="growth") == 0
    # an unbound key: the feature named, else the service's name
    unbound = keel.create_key(team="growth")
    body = json_request(spend_span("00000000000000c3", **{"keel.feature": "search"}),
                        spend_span("00000000000000c4"), service="recs-api")
    assert ingest(keel, unbound, body).status_code == 200
    assert stored(keel, team="growth", feature="search") == 1
    assert stored(keel, team="growth", feature="recs-api") == 1


def test_ingested_spans_obey_the_features_capture_policy(tmp_path: Path) -> None:
    """Content of an ingested span is stored as its feature's `capture` says, like a
    gateway trace's: none keeps no text, redacted masks PII."""
    config = {**CONFIG, "features": [{"name": "private", "capture": "none"},
                                     {"name": "masked", "capture": "redacted"}]}
    messages = json.dumps([{"role": "user", "parts": [
        {"type": "text", "content": "mail me at jane.doe@example.com"}]}])
    with running_keel(tmp_path, config) as k:
        for i, feature in enumerate(("private", "masked")):
            body = json_request(spend_span(f"{i + 1:016x}", **{
                "keel.feature": feature, "gen_ai.input.messages": messages}))
            assert ingest(k, k.admin_key, body).status_code == 200
        k.flush()
        rows = {r["feature"]: r for r in k.run(_with_content(k))}
        assert rows["private"]["request"] is None
        masked = json.dumps(rows["masked"]["request"])
        assert "jane.doe@example.com" not in masked and "mail me at" in masked


async def _with_content(k: Keel) -> list[dict[str, Any]]:
    from keel.store.traces import get_trace, list_traces

    page, _ = await list_traces(k.state.store, TraceFilter())
    return [t for r in page if (t := await get_trace(k.state.store, r["id"])) is not None]
