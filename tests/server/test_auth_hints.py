"""A refused key on the admin API says which keys it takes and where each comes from: the
admin key (and `keel admin-key reset` when it is lost), role keys, and gateway keys on the
routes any key may call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.keel import Keel, running_keel


@pytest.fixture
def keel(tmp_path: Path) -> Iterator[Keel]:
    with running_keel(tmp_path) as k:
        yield k


def refusal(k: Keel, method: str, path: str, key: str | None) -> str:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    r = httpx.request(method, f"{k.url}{path}", headers=headers)
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    return str(error["message"])


def test_a_bad_admin_key_points_at_admin_key_reset_and_role_keys(keel: Keel) -> None:
    message = refusal(keel, "GET", "/api/traces", "sk-keel-admin-lost-and-mistyped")
    assert "invalid API key" in message
    assert "`keel admin-key reset`" in message and "KEEL_MASTER_KEY" in message
    assert "`keel keys create --team TEAM --role viewer`" in message
    assert "gateway key" not in message  # /api/traces does not take one
    assert "--role admin" in refusal(keel, "GET", "/api/keys", "not-a-key")


def test_no_key_on_the_admin_api_says_how_to_send_one_and_which(keel: Keel) -> None:
    message = refusal(keel, "GET", "/api/traces", None)
    assert "no API key" in message and "Authorization: Bearer" in message
    assert "`keel admin-key reset`" in message and "--role viewer" in message


def test_routes_any_key_may_call_also_name_gateway_keys(keel: Keel) -> None:
    message = refusal(keel, "GET", "/api/outcomes", "sk-keel-000000000000nope")
    assert "`keel admin-key reset`" in message
    assert "gateway key (`keel keys create --team TEAM`)" in message
