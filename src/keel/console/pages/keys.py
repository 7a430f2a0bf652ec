"""Keys & settings (admin): every key (id, name, team, role, reach, created, last used,
revoked), creating one (its secret shown once, on the page that created it), revoking one
after a confirmation; and the config keel runs with, secrets replaced, with its hash as the
audit log records it.

Keys are created and revoked through ``keel.keys.service.create_key`` / ``revoke_key`` as
``POST /api/keys`` and ``DELETE /api/keys/{id}`` do: audited with the caller as actor, and
through this process's key ring, so a new key works and a revoked one is refused here at
once.
"""

from __future__ import annotations

from typing import Any

import yaml
from starlette.responses import Response

from keel.audit import content_hash
from keel.config import KeelConfig
from keel.console.web import Action, Page, View, action, page
from keel.errors import InvalidRequest, NotFound
from keel.keys.service import FEEDBACK_SCOPE, create_key, public_record, revoke_key
from keel.secrets import REDACTED, SecretRedactor, is_secret_header, is_secret_name
from keel.store import keys as key_queries
from keel.types import ROLES

__all__ = ["ACTIONS", "PAGES", "config_hash", "shown_config"]

PAGES: list[Page] = []
ACTIONS: list[Action] = []

GATEWAY = "gateway"  # the role select's value for a key without a role
MAX_FIELD = 128


def config_hash(config: KeelConfig) -> str:
    """The config's hash as ``AuditLog.record_config`` records it (the ``after_hash`` of a
    ``config.change`` entry): the hash of each top-level section's hash."""
    return content_hash({k: content_hash(v) for k, v in config.model_dump(mode="json").items()})


def _hide(value: Any) -> Any:
    """``value`` with the values of secret-named keys (``api_key``, a ``headers`` entry
    such as ``authorization``, an option named ``...token``) replaced."""
    if isinstance(value, list):
        return [_hide(v) for v in value]
    if not isinstance(value, dict):
        return value
    mine = frozenset(str(h).lower() for h in value.get("secret_headers") or ())
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k == "headers" and isinstance(v, dict):
            out[k] = {h: REDACTED if is_secret_header(str(h), mine) and v[h] else v[h]
                      for h in v}
        elif isinstance(v, str) and v and is_secret_name(str(k)):
            out[k] = REDACTED
        else:
            out[k] = _hide(v)
    return out


def shown_config(config: KeelConfig, secrets: SecretRedactor, *,
                 defaults: bool = True) -> str:
    """The config as YAML with no secret in it: secret-named values replaced, then every
    secret this process holds (``SecretRedactor``) wherever else it appears (a password in
    a URL, a key in a plugin's options)."""
    dumped = config.model_dump(mode="json", exclude_defaults=not defaults)
    return yaml.safe_dump(secrets.redact_json(_hide(dumped)), sort_keys=False,
                          allow_unicode=True, default_flow_style=False)


def _field(form: dict[str, str], name: str) -> str | None:
    value = (form.get(name) or "").strip()
    if len(value) > MAX_FIELD:
        raise InvalidRequest(f"'{name}' must be at most {MAX_FIELD} characters", param=name)
    return value or None


async def _keys_page(view: View, *, created: dict[str, Any] | None = None,
                     error: str | None = None) -> Response:
    rows = [public_record(r) for r in await key_queries.list_keys(view.state.store)]
    rows.sort(key=lambda r: (r["revoked_at"] is not None, -(r["created_at"] or 0)))
    defaults = view.request.query_params.get("defaults") != "0"
    recorded, _ = await view.state.audit.entries(action="config.change", limit=1)
    return view.render(
        "keys.html", title="Keys & settings", rows=rows, created=created, error=error,
        form=view.form if error else {}, roles=ROLES, gateway=GATEWAY,
        config_yaml=shown_config(view.state.config, view.state.gateway.secrets,
                                 defaults=defaults),
        defaults=defaults, config_hash=config_hash(view.state.config),
        recorded=recorded[0] if recorded else None, config_path=view.state.settings.config,
        filterbar=False)


@page(PAGES, "/keys", "Keys & settings", "admin")
async def keys(view: View) -> Response:
    return await _keys_page(view)


@action(ACTIONS, "/keys/create", "admin")
async def create(view: View) -> Response:
    """Create a key and show it on this page, once: it is not stored, only its hash."""
    form = view.form
    try:
        team = _field(form, "team")
        if team is None:
            raise InvalidRequest("'team' is required: the team this key's spend belongs to",
                                 param="team")
        role = _field(form, "role") or GATEWAY
        if role != GATEWAY and role not in ROLES:
            raise InvalidRequest(f"unknown role '{role}': use one of {', '.join(ROLES)}, or "
                                 "none for a gateway key", param="role")
        key, record = await create_key(
            view.state.store, team=team, feature=_field(form, "feature"),
            name=_field(form, "name"), feature_override=form.get("feature_override") == "yes",
            role=None if role == GATEWAY else role,
            org_wide=True if form.get("org_wide") == "yes" else None,
            scope=FEEDBACK_SCOPE if form.get("feedback_only") == "yes" else None,
            origins=_origins(form), actor=view.who, audit=view.state.audit,
            ring=view.state.keys)
    except InvalidRequest as exc:  # the form again, as filled in, with what went wrong
        return await _keys_page(view, error=exc.message)
    return await _keys_page(view, created={**record, "key": key})


def _origins(form: dict[str, str]) -> list[str] | None:
    """The browser origins of a feedback key, comma- or space-separated (None: none)."""
    raw = form.get("origins") or ""
    if len(raw) > 2000:
        raise InvalidRequest("'origins' must be at most 2000 characters", param="origins")
    found = [o for o in raw.replace(",", " ").split() if o]
    return found or None


def _key_id(view: View) -> str:
    key_id = str(view.request.path_params["key_id"])
    if not (key_id.isascii() and key_id.isalnum() and len(key_id) <= 32):
        raise NotFound(f"no key with id '{key_id[:40]}'")
    return key_id


async def _active(view: View, key_id: str) -> dict[str, Any]:
    row = next((r for r in await key_queries.list_keys(view.state.store, include_revoked=False)
                if r["id"] == key_id), None)
    if row is None:
        raise NotFound(f"no active key with id '{key_id}'")
    return public_record(row)


@page(PAGES, "/keys/{key_id}/revoke", "Revoke a key", "admin", nav=False)
async def confirm_revoke(view: View) -> Response:
    record = await _active(view, _key_id(view))
    return view.render("key_revoke.html", title=f"Revoke key {record['id']}", k=record,
                       me=view.principal.key_id == record["id"], error=None,
                       filterbar=False)


@action(ACTIONS, "/keys/{key_id}/revoke", "admin")
async def revoke(view: View) -> Response:
    key_id = _key_id(view)
    if view.form.get("confirm") != "yes":
        record = await _active(view, key_id)
        return view.render("key_revoke.html", title=f"Revoke key {key_id}", k=record,
                           me=view.principal.key_id == key_id, filterbar=False,
                           error="tick the box to confirm: the key stops working at once")
    if not await revoke_key(view.state.store, key_id, actor=view.who, audit=view.state.audit,
                            ring=view.state.keys):
        raise NotFound(f"no active key with id '{key_id}'")
    return view.back("/keys", f"key {key_id} is revoked: requests with it are refused")
