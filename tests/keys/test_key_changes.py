"""A key created or revoked through the admin API takes effect on that replica at once (the
key ring is changed in memory, not left to its next poll), with the official openai SDK as
the client; a reload that read the store before the change can never undo it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from keel.errors import AuthenticationFailed
from keel.keys.service import KeyRing, create_key, revoke_key
from keel.store import Store
from tests.support.keel import Keel, running_keel

APP = "https://app.example.com"
NEVER_S = 3600.0  # a poll interval no test outlives: nothing is left to the next poll


@pytest.fixture
def keel(tmp_path: Path, database_url: str) -> Iterator[Keel]:
    with running_keel(tmp_path, database_url=database_url, refresh_interval_s=NEVER_S) as k:
        yield k


def chat(k: Keel, key: str) -> str:
    client = openai.OpenAI(base_url=k.base_url, api_key=key, max_retries=0)
    answer = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "Where is my parcel?"}])
    return str(answer.choices[0].message.content)


def preflight(k: Keel, origin: str) -> int:
    return httpx.options(f"{k.url}/api/feedback", headers={
        "origin": origin, "access-control-request-method": "POST"}).status_code


def test_a_key_created_through_the_api_works_at_once_and_stops_at_once_when_revoked(
        keel: Keel) -> None:
    r = httpx.post(f"{keel.url}/api/keys", json={"team": "cx", "feature": "support"},
                   headers=keel.admin_headers())
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    assert chat(keel, key)
    r = httpx.delete(f"{keel.url}/api/keys/{key_id}", headers=keel.admin_headers())
    assert r.status_code == 200, r.text
    with pytest.raises(openai.AuthenticationError, match="unknown or revoked"):
        chat(keel, key)


def test_a_feedback_key_created_through_the_api_opens_its_origin_at_once(keel: Keel) -> None:
    assert preflight(keel, APP) == 403
    r = httpx.post(f"{keel.url}/api/keys", json={"team": "cx", "scope": "feedback",
                                                 "origins": [APP]},
                   headers=keel.admin_headers())
    assert r.status_code == 201, r.text
    assert preflight(keel, APP) == 204
    httpx.delete(f"{keel.url}/api/keys/{r.json()['id']}", headers=keel.admin_headers())
    assert preflight(keel, APP) == 403


async def test_a_reload_in_flight_cannot_undo_a_key_created_meanwhile(store: Store) -> None:
    ring = KeyRing(store, master_key=None)
    await ring.load()
    earlier, _ = await create_key(store, team="cx")  # changes the version: a full reload
    reload = asyncio.create_task(ring.refresh())
    await asyncio.sleep(0)  # the reload has begun reading the store
    key, record = await create_key(store, team="cx", ring=ring)
    await reload
    assert ring.authenticate(key).key_id == record["id"]
    assert ring.authenticate(earlier).team == "cx"
    reload = asyncio.create_task(ring.refresh())
    await asyncio.sleep(0)
    assert await revoke_key(store, record["id"], ring=ring)
    await reload
    with pytest.raises(AuthenticationFailed):
        ring.authenticate(key)
