"""Keys: shown once, stored salted-hashed, verified in memory, revocable, master key."""

from __future__ import annotations

import pytest

from keel.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from keel.keys.service import KeyRing, create_key, ensure_master_key
from keel.store import Store
from keel.store import keys as q


async def test_created_key_authenticates_with_its_attribution(store: Store) -> None:
    key, record = await create_key(store, team="cx", feature="support", models=["mock"])
    ring = KeyRing(store, master_key=None)
    await ring.load()
    p = ring.authenticate(key)
    assert (p.key_id, p.team, p.feature, p.models) == (record["id"], "cx", "support", ("mock",))
    assert not p.is_admin


async def test_secret_is_never_stored(store: Store) -> None:
    key, record = await create_key(store, team="cx")
    rows = await q.list_keys(store)
    flat = repr(rows)
    assert key[len("sk-keel-") + 12:] not in flat
    assert rows[0]["secret_hash"] and rows[0]["salt"]
    assert "secret_hash" not in record


async def test_wrong_secret_and_revoked_key_are_rejected(store: Store) -> None:
    key, record = await create_key(store, team="cx")
    ring = KeyRing(store, master_key=None)
    await ring.load()
    with pytest.raises(AuthenticationFailed, match="unknown or revoked"):
        ring.authenticate(key[:-3] + "abc")
    assert await q.revoke_key(store, record["id"])
    assert not await q.revoke_key(store, record["id"])
    await ring.refresh()
    with pytest.raises(AuthenticationFailed):
        ring.authenticate(key)


async def test_missing_key_says_how_to_send_one(store: Store) -> None:
    ring = KeyRing(store, master_key=None)
    await ring.load()
    with pytest.raises(AuthenticationFailed, match="Authorization: Bearer"):
        ring.authenticate(None)


async def test_generated_master_key_is_stored_as_hash_only(store: Store) -> None:
    key = await ensure_master_key(store, None)
    assert key and key.startswith("sk-keel-admin-")
    assert await ensure_master_key(store, None) is None  # only the first start generates
    stored = await q.get_meta(store, "master_key_hash")
    assert stored and key not in stored
    ring = KeyRing(store, master_key=None)
    await ring.load()
    assert ring.authenticate(key).is_admin


async def test_configured_master_key_wins(store: Store) -> None:
    ring = KeyRing(store, master_key="sk-keel-my-own-master-key-that-is-long-enough")
    await ring.load()
    assert ring.authenticate("sk-keel-my-own-master-key-that-is-long-enough").is_admin


async def test_last_used_is_recorded_in_batches(store: Store) -> None:
    key, _record = await create_key(store, team="cx")
    ring = KeyRing(store, master_key=None)
    await ring.load()
    ring.authenticate(key)
    assert (await q.list_keys(store))[0]["last_used_at"] is None
    await ring.flush_last_used()
    assert (await q.list_keys(store))[0]["last_used_at"] is not None


async def test_a_role_key_carries_its_role_and_is_refused_by_the_gateway(store: Store) -> None:
    key, record = await create_key(store, team="ops", role="operator")
    gateway, _ = await create_key(store, team="cx")
    assert record["role"] == "operator"
    ring = KeyRing(store, master_key="sk-keel-my-own-master-key-that-is-long-enough")
    await ring.load()
    assert ring.authenticate(key).role == "operator"
    with pytest.raises(PermissionDenied, match="use a gateway key") as exc:
        ring.authenticate_gateway(key)
    assert exc.value.code == "role_key_not_for_gateway"
    assert ring.authenticate_gateway(gateway).role is None
    assert ring.authenticate_gateway("sk-keel-my-own-master-key-that-is-long-enough").is_admin


async def test_an_unknown_role_or_a_role_with_a_scope_is_refused(store: Store) -> None:
    with pytest.raises(InvalidRequest, match="admin, operator, reviewer, auditor, viewer"):
        await create_key(store, team="ops", role="root")
    with pytest.raises(InvalidRequest, match="cannot also have scope"):
        await create_key(store, team="ops", role="viewer", scope="feedback")
    assert await q.list_keys(store) == []
