"""Keys are shown once and stored as a salted SHA-256 of their secret part.

A virtual key looks like ``sk-keel-<12 hex id><43 url-safe secret chars>``. The id
locates the record; the secret is checked against its salted hash. The key ring holds
every active key in memory, so verifying a request costs one hash and no database
round trip; it re-reads the store when the keys version in the store changes (polled every
``KEEL_REFRESH_INTERVAL_S``). A key created or revoked through a process's own ring
(``create_key(..., ring=)``, ``revoke_key(..., ring=)``: the admin API) takes effect in that
process at once, without a reload; other processes (replicas, the CLI) see it at their next
poll. Refreshes and those local changes take turns (one lock), so a reload that read the
store before a change can never undo it. Last-used times are collected in memory and
written in batches.

A role key is team-scoped (it reads its own team's traces, feedback, spend, measures and
reviews) or org-wide (every team's): ``org_wide``, stored with the key. Role keys are
team-scoped unless created org-wide; ``admin`` keys are always org-wide, and ``auditor`` keys
must be created org-wide (the audit log spans every team). Gateway keys have no reach of
their own (``org_wide`` is None): they read their own team's feedback and outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from keel.audit import AuditLog, content_hash
from keel.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from keel.polling import Poller
from keel.store import Store
from keel.store import keys as q
from keel.types import ROLES, Principal

log = logging.getLogger("keel.keys")

PREFIX = "sk-keel-"
ID_LEN = 12
MASTER_HASH = "master_key_hash"
ADMIN_PREFIX = "sk-keel-admin-"
FEEDBACK_SCOPE = "feedback"
SCOPES = (FEEDBACK_SCOPE,)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


@dataclass(slots=True)
class KeyRecord:
    id: str
    name: str | None
    team: str
    feature: str | None
    feature_override: bool
    models: tuple[str, ...] | None
    salt: str
    secret_hash: str
    scope: str | None = None  # None: a gateway key; "feedback": may only write feedback
    origins: frozenset[str] = frozenset()  # browser origins a feedback key may be used from
    role: str | None = None  # None: a gateway key; else its role on the admin API
    org_wide: bool = False  # a role key that reads every team's data
    # who calls with this key: built once with the record, handed to every request
    principal: Principal = field(init=False)

    def __post_init__(self) -> None:
        self.principal = Principal(key_id=self.id, team=self.team, feature=self.feature,
                                   models=self.models, feature_override=self.feature_override,
                                   scope=self.scope, role=self.role, org_wide=self.org_wide)


# The caller behind the master key (shared, like a record's principal: nobody changes it)
ADMIN = Principal(key_id=None, team="admin", feature=None, models=None, feature_override=True,
                  is_admin=True)


def _record(row: dict[str, Any]) -> KeyRecord:
    models = row.get("models")
    return KeyRecord(
        id=row["id"], name=row.get("name"), team=row["team"], feature=row.get("feature"),
        feature_override=bool(row.get("feature_override")),
        models=tuple(models) if models else None, salt=row["salt"],
        secret_hash=row["secret_hash"], scope=row.get("scope"),
        origins=frozenset(row.get("origins") or ()), role=row.get("role"),
        org_wide=bool(_org_wide(row)),
    )


def _org_wide(row: dict[str, Any]) -> bool | None:
    """A stored key's reach: None for a gateway key; a role key stored without one (by an
    older keel during an upgrade) reads its own team only, an admin key every team."""
    if row.get("role") is None:
        return None
    return row["role"] == "admin" or bool(row.get("org_wide"))


def _check_name(value: str | None, what: str) -> None:
    if value is not None and (not value or len(value) > 128 or not value.isprintable()):
        raise InvalidRequest(f"{what} must be 1-128 printable characters", param=what)


def normalize_origin(origin: str) -> str:
    """``https://App.example.com/`` -> ``https://app.example.com``: the form browsers send in
    the ``Origin`` header (scheme, host and port only)."""
    from urllib.parse import urlsplit

    bad = InvalidRequest(
        f"origin {origin!r} is not a browser origin: use scheme://host[:port], e.g. "
        "https://app.example.com (no path, no wildcard)", param="origins")
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        raise bad from None
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/")
            or parts.query or parts.fragment or parts.username or "*" in origin):
        raise bad
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _check_role(role: str | None, scope: str | None) -> None:
    if role is None:
        return
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}: use one of {', '.join(ROLES)} (or omit "
                             "it for a gateway key)", param="role")
    if scope is not None:
        raise InvalidRequest(f"a key with a role is for the admin API; it cannot also have "
                             f"scope {scope!r}: create two keys", param="role")


def _reach(role: str | None, org_wide: bool | None) -> bool | None:
    """What a new key stores as ``org_wide``: None for a gateway key; for a role key, whether
    it reads every team's data (team-scoped unless asked; admin keys always org-wide)."""
    if role is None:
        if org_wide:
            raise InvalidRequest("'org_wide' is for keys with a role (the admin API); a "
                                 "gateway key reads its own team's feedback only: add a role "
                                 "(`--role viewer`)", param="org_wide")
        return None
    if role == "admin":
        if org_wide is False:
            raise InvalidRequest("an admin key is always org-wide (it may create keys of any "
                                 "team): omit 'org_wide', or use another role for a "
                                 "team-scoped key", param="org_wide")
        return True
    if role == "auditor" and not org_wide:
        raise InvalidRequest("an auditor key reads the audit log, which spans every team: "
                             "create it org-wide ('org_wide': true, `--org-wide`)",
                             param="org_wide")
    return bool(org_wide)


def _check_scope(scope: str | None, origins: list[str] | None) -> list[str] | None:
    if scope is not None and scope not in SCOPES:
        raise InvalidRequest(f"unknown key scope {scope!r}: omit it for a gateway key, or use "
                             f"{' or '.join(SCOPES)}", param="scope")
    if origins and scope != FEEDBACK_SCOPE:
        raise InvalidRequest("origins are for browser-safe feedback keys only: add "
                             "scope 'feedback' (`--scope feedback`)", param="origins")
    if not origins:
        return None
    return sorted({normalize_origin(o) for o in origins})


async def create_key(
    store: Store, *, team: str, feature: str | None = None, models: list[str] | None = None,
    name: str | None = None, feature_override: bool = False, scope: str | None = None,
    origins: list[str] | None = None, role: str | None = None, org_wide: bool | None = None,
    actor: str | None = None, audit: AuditLog | None = None, ring: KeyRing | None = None,
) -> tuple[str, dict[str, Any]]:
    """Create a key; returns (the full key, shown once; its public record).

    ``scope="feedback"`` makes a key that may only write feedback (safe to ship in a web
    page); ``origins`` are the browser origins it may be used from. ``role`` (one of
    ``ROLES``) makes a key for the admin API, refused by the gateway; it reads its own
    ``team``'s data only unless ``org_wide`` (``admin`` keys are always org-wide, ``auditor``
    keys must be). The creation is
    recorded in the audit log (``key.create``, by ``actor``). With ``ring`` (this process's
    key ring) the key authenticates here as soon as this returns."""
    _check_name(team, "team")
    _check_name(feature, "feature")
    _check_name(name, "name")
    _check_role(role, scope)
    reach = _reach(role, org_wide)
    origin_list = _check_scope(scope, origins)
    key_id = secrets.token_hex(ID_LEN // 2)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    row = {
        "id": key_id, "name": name, "team": team, "feature": feature,
        "feature_override": feature_override, "models": list(models) if models else None,
        "salt": salt, "secret_hash": _hash(salt, secret), "created_at": time.time(),
        "revoked_at": None, "last_used_at": None, "scope": scope, "origins": origin_list,
        "role": role, "org_wide": reach,
    }
    await q.insert_key(store, row)
    if ring is not None:
        await ring.admit(row)
    record = public_record(row)
    await (audit or AuditLog.from_settings(store)).try_record(
        "key.create", actor=actor, target=key_id, after=content_hash(record),
        detail={k: record[k] for k in ("name", "team", "feature", "feature_override", "models",
                                       "scope", "origins", "role", "org_wide")})
    return f"{PREFIX}{key_id}{secret}", record


async def revoke_key(store: Store, key_id: str, *, actor: str | None = None,
                     audit: AuditLog | None = None, ring: KeyRing | None = None) -> bool:
    """Revoke an active key (recorded as ``key.revoke``); False if there is none. With
    ``ring`` (this process's key ring) the key is refused here as soon as this returns."""
    if not await q.revoke_key(store, key_id):
        return False
    if ring is not None:
        await ring.drop(key_id)
    row = next((r for r in await q.list_keys(store) if r["id"] == key_id), None)
    after = public_record(row) if row else None
    await (audit or AuditLog.from_settings(store)).try_record(
        "key.revoke", actor=actor, target=key_id,
        before=content_hash({**after, "revoked_at": None}) if after else None,
        after=content_hash(after) if after else None,
        detail={"team": after["team"] if after else None})
    return True


def public_record(row: dict[str, Any]) -> dict[str, Any]:
    """A key as the API and the CLI show it (never its secret). ``org_wide``: whether a role
    key reads every team's data (None for a gateway key)."""
    return {**{k: row.get(k) for k in ("id", "name", "team", "feature", "feature_override",
                                       "models", "scope", "origins", "role")},
            "org_wide": _org_wide(row),
            **{k: row.get(k) for k in ("created_at", "revoked_at", "last_used_at")}}


async def ensure_master_key(store: Store, configured: str | None) -> str | None:
    """Returns a newly generated master key (to print once), or None.

    With ``KEEL_MASTER_KEY`` set, that key is the admin key. Otherwise the first start
    generates one and stores only its hash; later starts use the stored hash.
    """
    if configured:
        return None
    if await q.get_meta(store, MASTER_HASH):
        return None
    return await reset_master_key(store)


async def reset_master_key(store: Store) -> str:
    """Generate a new admin key, store its hash (the old one stops working), return it."""
    key = ADMIN_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    await q.set_master_hash(store, MASTER_HASH, f"{salt}${_hash(salt, key)}")
    return key


class KeyRing:
    def __init__(self, store: Store, *, master_key: str | None) -> None:
        self.store = store
        self._master_plain = master_key
        self._master_hash: tuple[str, str] | None = None
        self._keys: dict[str, KeyRecord] = {}
        self.feedback_origins: frozenset[str] = frozenset()  # of every active feedback key
        self._version: str | None = None
        self._last_used: dict[str, float] = {}
        self._poller = Poller("keel-key-refresh", log,
                              "refreshing keys failed; keeping the keys in memory")
        # Reloads and local changes take turns: a reload that read the store before a key
        # was created (or revoked) here must not finish after that change and undo it.
        self._changing = asyncio.Lock()

    async def load(self) -> None:
        await self.refresh(force=True)

    async def refresh(self, *, force: bool = False) -> None:
        async with self._changing:
            version = await q.keys_version(self.store)
            if not force and version == self._version:
                return
            if self._master_plain is None:
                stored = await q.get_meta(self.store, MASTER_HASH)
                if stored:
                    salt, digest = stored.split("$", 1)
                    self._master_hash = (salt, digest)
            rows = await q.list_keys(self.store, include_revoked=False)
            self._keys = {r["id"]: _record(r) for r in rows}
            self._index_origins()
            self._version = version

    async def admit(self, row: dict[str, Any]) -> None:
        """A key just stored by this process (a row of ``api_keys``): valid here at once."""
        record = _record(row)
        async with self._changing:
            self._keys[record.id] = record
            if record.scope == FEEDBACK_SCOPE:
                self.feedback_origins |= record.origins

    async def drop(self, key_id: str) -> None:
        """A key just revoked by this process: refused here at once."""
        async with self._changing:
            record = self._keys.pop(key_id, None)
            if record is not None and record.origins:
                self._index_origins()

    def _index_origins(self) -> None:
        self.feedback_origins = frozenset().union(
            *(k.origins for k in self._keys.values() if k.scope == FEEDBACK_SCOPE))

    async def start(self, interval_s: float) -> None:
        await self.load()
        self._poller.start(self._tick, interval_s)

    async def _tick(self) -> None:
        await self.refresh()
        await self.flush_last_used()

    async def aclose(self) -> None:
        await self._poller.stop()
        with contextlib.suppress(Exception):
            await self.flush_last_used()

    async def flush_last_used(self) -> None:
        pending, self._last_used = self._last_used, {}
        await q.touch_keys(self.store, pending)

    def is_master(self, key: str) -> bool:
        if self._master_plain is not None:
            return hmac.compare_digest(key.encode(), self._master_plain.encode())
        if self._master_hash is not None:
            salt, digest = self._master_hash
            return hmac.compare_digest(_hash(salt, key), digest)
        return False

    def master_fingerprint(self) -> str | None:
        """Names the current admin key without revealing it (None while there is none): a
        console session opened with the admin key holds this, so a reset ends it."""
        if self._master_plain is not None:
            basis = f"plain:{_hash('keel-console', self._master_plain)}"
        elif self._master_hash is not None:
            basis = "hash:" + ":".join(self._master_hash)
        else:
            return None
        return hashlib.sha256(basis.encode()).hexdigest()[:24]

    def record(self, key_id: str | None) -> KeyRecord | None:
        return self._keys.get(key_id) if key_id else None

    def authenticate_gateway(self, key: str | None) -> Principal:
        """The caller of a gateway endpoint (``/v1/...``): as :meth:`authenticate`, and a key
        with a role is refused, since it is for the admin API only."""
        principal = self.authenticate(key)
        if principal.role is not None:
            raise PermissionDenied(
                f"this key has the '{principal.role}' role: it is for the admin API (/api), "
                "not the gateway; use a gateway key (`keel keys create --team TEAM`, no "
                "--role)", code="role_key_not_for_gateway")
        return principal

    def authenticate(self, key: str | None, scope: str | None = None) -> Principal:
        """The caller behind ``key``. A scoped key (e.g. a feedback key) is refused unless
        the endpoint accepts that ``scope``; gateway keys and the admin key are never
        refused here."""
        if not key:
            raise AuthenticationFailed(
                "no API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>'); "
                "create one with `keel keys create --team TEAM`"
            )
        if key.startswith(PREFIX) and len(key) > len(PREFIX) + ID_LEN:
            record = self._keys.get(key[len(PREFIX):len(PREFIX) + ID_LEN])
            if record is not None and hmac.compare_digest(
                _hash(record.salt, key[len(PREFIX) + ID_LEN:]), record.secret_hash
            ):
                if record.scope is not None and record.scope != scope:
                    raise PermissionDenied(
                        f"this is a {record.scope}-only key: it may only POST /api/feedback "
                        "(e.g. from a web page); use a gateway key for this endpoint",
                        code=f"{record.scope}_only_key")
                self._last_used[record.id] = time.time()
                return record.principal
        if self.is_master(key):
            return ADMIN
        raise AuthenticationFailed(
            "invalid API key: it is unknown or revoked; check the key, or create one with "
            "`keel keys create --team TEAM`"
        )
