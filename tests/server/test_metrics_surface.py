"""GET /metrics: it needs a key (the master key or a key with role ``metrics``, which may read
nothing else) unless KEEL_METRICS_PUBLIC opts out, and its label values come from the config,
so no request can add a series: random model and feature names all count as ``other``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from keel.cli.main import main
from tests.support.keel import Keel, running_keel

USER = [{"role": "user", "content": "hi"}]
CONFIG: dict[str, Any] = {
    "providers": [{"name": "mock", "kind": "mock"}],
    "models": [{"name": "mock", "provider": "mock",
                "price": {"input_per_mtok": 1, "output_per_mtok": 2}}],
    "routes": [{"name": "assistant", "targets": [{"model": "mock"}]}],
    "features": [{"name": "support"}],
}
Series = frozenset[tuple[str, tuple[tuple[str, str], ...]]]


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def scrape(k: Keel, key: str | None = None) -> str:
    r = httpx.get(k.url + "/metrics", headers=auth(key or k.admin_key))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def keel_series(text: str) -> Series:
    """Every (sample name, labels) of keel's own request metrics."""
    return frozenset((s.name, tuple(sorted(s.labels.items())))
                     for family in text_string_to_metric_families(text)
                     if family.name.startswith(("keel_requests", "keel_errors", "keel_tokens",
                                                "keel_cost", "keel_request_latency",
                                                "keel_time_to_first_token"))
                     for s in family.samples)


def label_values(series: Series, label: str) -> set[str]:
    return {v for _, labels in series for name, v in labels if name == label}


@pytest.fixture
def keel(tmp_path: Path) -> Iterator[Keel]:
    with running_keel(tmp_path, CONFIG) as k:
        yield k


# --- who may read it --------------------------------------------------------------------------


def test_metrics_needs_the_master_key_or_a_metrics_key(keel: Keel) -> None:
    r = httpx.get(keel.url + "/metrics")
    assert r.status_code == 401, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_api_key"
    assert "role 'metrics'" in err["message"] and "KEEL_METRICS_PUBLIC" in err["message"]
    r = httpx.get(keel.url + "/metrics", headers=auth("sk-keel-" + "0" * 60))
    assert r.status_code == 401 and "invalid API key" in r.json()["error"]["message"]

    refused = {"gateway": keel.create_key(team="ops")}
    for role in ("viewer", "auditor", "operator"):
        refused[role] = keel.create_key(team="ops", role=role, org_wide=True)
    for who, key in refused.items():
        r = httpx.get(keel.url + "/metrics", headers=auth(key))
        assert r.status_code == 403, f"{who}: {r.text}"
        assert r.json()["error"]["code"] == "role_required"
        assert "--role metrics" in r.json()["error"]["message"]

    metrics_key = keel.create_key(team="ops", name="prometheus", role="metrics")
    assert "keel_trace_queue_depth" in scrape(keel, metrics_key)
    assert "keel_trace_queue_depth" in scrape(keel, keel.admin_key)


def test_a_metrics_key_may_read_nothing_else(keel: Keel) -> None:
    key = keel.create_key(team="ops", role="metrics")
    r = httpx.post(keel.url + "/v1/chat/completions", headers=auth(key),
                   json={"model": "mock", "messages": USER})
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_key_not_for_gateway"
    for method, path, body in (("GET", "/api/traces", None), ("GET", "/api/keys", None),
                               ("GET", "/api/metrics/summary", None),
                               ("POST", "/api/outcomes", {"name": "ticket_resolved"})):
        r = httpx.request(method, keel.url + path, headers=auth(key), json=body)
        assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text}"
        assert r.json()["error"]["code"] == "role_required", r.text


def test_keel_metrics_public_serves_it_without_a_key(tmp_path: Path) -> None:
    with running_keel(tmp_path, CONFIG, metrics_public=True) as k:
        r = httpx.get(k.url + "/metrics")
        assert r.status_code == 200 and "keel_trace_queue_depth" in r.text


def test_metrics_keys_are_created_with_the_cli_and_the_api(
        keel: Keel, tmp_path: Path) -> None:
    r = httpx.post(keel.url + "/api/keys", headers=auth(keel.admin_key),
                   json={"team": "ops", "name": "prometheus", "role": "metrics"})
    assert r.status_code == 201 and r.json()["role"] == "metrics", r.text
    scrape(keel, r.json()["key"])

    env = {"KEEL_DATA_DIR": str(tmp_path / "cli"),
           "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    out = CliRunner().invoke(main, ["keys", "create", "--team", "ops", "--role", "metrics",
                                    "--json"], env=env, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert orjson.loads(out.output)["role"] == "metrics"
    help_text = CliRunner().invoke(main, ["keys", "create", "--help"]).output
    assert "metrics (only GET /metrics" in " ".join(help_text.split())


# --- what it counts ---------------------------------------------------------------------------


def test_random_model_names_leave_the_metrics_unchanged(keel: Keel) -> None:
    """5,000 requests, each naming a model and a feature nobody configured (all 404): the
    series before and after are the same ones, under ``other``."""
    key = keel.create_key(team="cx")  # bound to no feature: it may report any

    def burst(client: httpx.Client, n: int) -> None:
        for _ in range(n):
            r = client.post("/v1/chat/completions",
                            json={"model": f"m-{uuid.uuid4().hex}", "messages": USER},
                            headers={"x-keel-feature": f"f-{uuid.uuid4().hex}"})
            assert r.status_code == 404, r.text

    with httpx.Client(base_url=keel.url, headers=auth(key)) as client:
        burst(client, 1)
        first = scrape(keel)
        burst(client, 5000)
        second = scrape(keel)
    print(f"/metrics: {len(first)} bytes after 1 random model, {len(second)} after 5,001")
    assert keel_series(second) == keel_series(first)
    assert label_values(keel_series(second), "model") == {"other"}
    assert label_values(keel_series(second), "feature") == {"other"}
    assert label_values(keel_series(second), "error_type") == {"model_not_found"}
    assert len(second) - len(first) < 200  # a few more digits in the counts, nothing else


def test_random_feature_names_count_as_other_and_configured_names_as_themselves(
        keel: Keel) -> None:
    """Answered requests with random features add no series either; configured models,
    routes and features keep their names, and a request with no feature is ``default``."""
    key = keel.create_key(team="cx")
    bound = keel.create_key(team="cx", feature="not-in-the-config")

    def chat(client: httpx.Client, model: str, feature: str | None = None) -> None:
        headers = {"x-keel-feature": feature} if feature else {}
        r = client.post("/v1/chat/completions", headers=headers,
                        json={"model": model, "messages": USER})
        assert r.status_code == 200, r.text

    with httpx.Client(base_url=keel.url, headers=auth(key)) as client:
        chat(client, "mock", f"f-{uuid.uuid4().hex}")
        chat(client, "mock")
        chat(client, "assistant", "support")
        first = keel_series(scrape(keel))
        for _ in range(1000):
            chat(client, "mock", f"f-{uuid.uuid4().hex}")
        chat(client, "mock", "support")  # configured: a series of its own
    with httpx.Client(base_url=keel.url, headers=auth(bound)) as client:
        chat(client, "mock")  # a key's feature is not a label unless the config names it
    second = keel_series(scrape(keel))
    assert label_values(second, "model") == {"mock", "assistant"}
    assert label_values(second, "feature") == {"other", "default", "support"}
    new = {labels for _, labels in second - first}
    assert new and all(("feature", "support") in labels and ("model", "mock") in labels
                       for labels in new), new
    assert ("keel_requests_total", (("endpoint", "chat"), ("feature", "support"),
                                    ("model", "assistant"), ("status", "200"))) in second
