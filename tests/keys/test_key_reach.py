"""A role key's reach, on both dialects: team-scoped unless created org-wide (admin keys always
org-wide, auditor keys only org-wide, gateway keys none), carried to the caller's
``visible_team``; and the migration that keeps the role keys of an existing store org-wide."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from keel.errors import InvalidRequest
from keel.keys.service import KeyRing, create_key, public_record
from keel.store import Store
from keel.store import keys as q
from keel.types import Principal
from tests.support.migrations import empty_database_url, migrate  # noqa: F401 (a fixture)

MASTER = "sk-keel-a-master-key-that-is-long-enough-for-tests"


async def ring_of(store: Store) -> KeyRing:
    ring = KeyRing(store, master_key=MASTER)
    await ring.load()
    return ring


async def test_role_keys_read_their_own_team_unless_created_org_wide(store: Store) -> None:
    made = {
        "scoped": await create_key(store, team="cx", role="viewer"),
        "org": await create_key(store, team="cx", role="reviewer", org_wide=True),
        "admin": await create_key(store, team="cx", role="admin"),
        "auditor": await create_key(store, team="cx", role="auditor", org_wide=True),
        "gateway": await create_key(store, team="cx"),
    }
    assert {n: record["org_wide"] for n, (_, record) in made.items()} == {
        "scoped": False, "org": True, "admin": True, "auditor": True, "gateway": None}
    ring = await ring_of(store)
    seen = {n: ring.authenticate(key).visible_team() for n, (key, _) in made.items()}
    assert seen == {"scoped": "cx", "org": None, "admin": None, "auditor": None,
                    "gateway": "cx"}
    assert ring.authenticate(MASTER).visible_team() is None
    stored = {r["id"]: r["org_wide"] for r in await q.list_keys(store)}
    assert {n: stored[record["id"]] for n, (_, record) in made.items()} == {
        "scoped": False, "org": True, "admin": True, "auditor": True, "gateway": None}


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"role": "admin", "org_wide": False}, "always org-wide"),
    ({"role": "auditor"}, "create it org-wide"),
    ({"role": "auditor", "org_wide": False}, "create it org-wide"),
    ({"org_wide": True}, "for keys with a role"),
], ids=["admin-scoped", "auditor", "auditor-scoped", "gateway-org-wide"])
async def test_a_reach_a_key_cannot_have_is_refused(store: Store, kwargs: dict[str, Any],
                                                    says: str) -> None:
    with pytest.raises(InvalidRequest, match=says) as exc:
        await create_key(store, team="cx", **kwargs)
    assert exc.value.param == "org_wide"
    assert await q.list_keys(store) == []


def test_a_principal_built_without_a_reach_reads_its_own_team() -> None:
    p = Principal(key_id="k", team="cx", feature=None, models=None, feature_override=False,
                  role="viewer")
    assert p.visible_team() == "cx"
    admin = Principal(key_id=None, team="admin", feature=None, models=None,
                      feature_override=True, is_admin=True)
    assert admin.visible_team() is None


# --- the migration ---------------------------------------------------------------------------




async def test_the_migration_keeps_stored_role_keys_org_wide(
        empty_database_url: str) -> None:  # noqa: F811
    store = Store(empty_database_url)
    try:
        await migrate(store, "0011")
        async with store.begin() as conn:  # keys as keel stored them before 0012
            await conn.execute(sa.text(
                "INSERT INTO api_keys (id, name, team, feature_override, salt, secret_hash, "
                "created_at, role) VALUES ('k-viewer', 'viewer', 'ops', false, 's', 'h', 1, "
                "'viewer'), ('k-admin', 'admin', 'ops', false, 's', 'h', 2, 'admin'), "
                "('k-app', 'app', 'ops', false, 's', 'h', 3, NULL)"))
        await store.upgrade()
        assert (await store.current_revision() or "") >= "0012"  # 0012 and any later one

        async with store.connect() as conn:
            cols = await conn.run_sync(lambda c: sa.inspect(c).get_columns("api_keys"))
        (org_wide,) = [c for c in cols if c["name"] == "org_wide"]
        assert org_wide["nullable"] and isinstance(org_wide["type"], sa.Boolean)
        stored = {r["name"]: r["org_wide"] for r in await q.list_keys(store)}
        assert stored == {"viewer": True, "admin": True, "app": None}

        ring = await ring_of(store)  # they read what they read before the upgrade
        seen = {}
        for key_id in ("k-viewer", "k-admin", "k-app"):
            record = ring.record(key_id)
            assert record is not None
            seen[key_id] = record.principal.visible_team()
        assert seen == {"k-viewer": None, "k-admin": None, "k-app": "ops"}
        # a role key an older keel stores after the upgrade (no reach) reads its own team
        async with store.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO api_keys (id, name, team, feature_override, salt, secret_hash, "
                "created_at, role) VALUES ('k-late', 'late', 'ops', false, 's', 'h', 4, "
                "'viewer')"))
        await ring.refresh(force=True)
        late = ring.record("k-late")
        assert late is not None and late.principal.visible_team() == "ops"
        listed = {r["id"]: public_record(r) for r in await q.list_keys(store)}
        assert listed["k-late"]["org_wide"] is False and listed["k-app"]["org_wide"] is None
        _, new = await create_key(store, team="ops", role="viewer", name="new")
        assert new["org_wide"] is False  # a new role key is team-scoped
        assert {r["name"]: r["org_wide"] for r in await q.list_keys(store)}["new"] is False
    finally:
        await store.aclose()
