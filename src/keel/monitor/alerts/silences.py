"""Silences: "do not notify alerts that match these labels until then", with who and why.

A silence's ``matchers`` are exact label values (``rule``, ``feature``, ``team``,
``model``); an alert is silenced when every matcher holds for it. Silenced alerts are
still evaluated and shown (as ``silenced``); they are only not notified. A silence has a
start, an end (at most ``MAX_SILENCE_S`` later) and can be lifted early; creating and lifting
one is recorded in the audit log.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from keel.audit import AuditLog
from keel.errors import InvalidRequest, NotFound, PermissionDenied
from keel.store import Store
from keel.store.alerts import add_silence, get_silence, lift_silence

__all__ = ["MATCHER_KEYS", "MAX_SILENCE_S", "check_team", "create", "lift", "new_silence"]

MATCHER_KEYS = ("rule", "feature", "team", "model")
MAX_SILENCE_S = 90 * 86400.0
_MAX_VALUE = 256
_MAX_REASON = 2000


def new_silence(matchers: Any, *, creator: str, reason: Any, starts_at: float,
                ends_at: float, now: float) -> dict[str, Any]:
    """A silence row, or ``InvalidRequest`` naming what is wrong and how to fix it."""
    if not isinstance(matchers, Mapping) or not matchers:
        raise InvalidRequest("matchers must be an object of labels to match, e.g. "
                             '{"feature": "support"}', param="matchers")
    clean: dict[str, str] = {}
    for key, value in matchers.items():
        if key not in MATCHER_KEYS:
            raise InvalidRequest(f"unknown matcher '{str(key)[:40]}'; use any of "
                                 f"{', '.join(MATCHER_KEYS)}", param="matchers")
        if not isinstance(value, str) or not value or len(value) > _MAX_VALUE:
            raise InvalidRequest(f"matchers.{key} must be a non-empty string of at most "
                                 f"{_MAX_VALUE} characters", param=f"matchers.{key}")
        clean[key] = value
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidRequest("a silence needs a reason: say why these alerts may stay quiet",
                             param="reason")
    if len(reason) > _MAX_REASON:
        raise InvalidRequest(f"reason is longer than {_MAX_REASON} characters", param="reason")
    if ends_at <= now:
        raise InvalidRequest("the silence would end in the past; give a later ends_at or a "
                             "duration such as 2h", param="ends_at")
    if ends_at <= starts_at:
        raise InvalidRequest("ends_at must be after starts_at", param="ends_at")
    if ends_at - max(starts_at, now) > MAX_SILENCE_S:
        raise InvalidRequest("a silence lasts at most 90 days; fix the cause or change the "
                             "rule instead", param="ends_at")
    return {"id": "sil_" + secrets.token_hex(8), "matchers": clean, "creator": creator,
            "reason": reason.strip(), "starts_at": starts_at, "ends_at": ends_at,
            "created_at": now, "lifted_at": None, "lifted_by": None}


def check_team(row: dict[str, Any], team: str | None) -> None:
    """A caller who reads one team only (``team``) may only make or lift that team's
    silences: ones whose matchers name the team."""
    if team is not None and row["matchers"].get("team") != team:
        raise PermissionDenied(f"a key of team '{team}' may only silence its own team's "
                               f"alerts: the matchers must include \"team\": \"{team}\"")


async def create(store: Store, audit: AuditLog | None, row: dict[str, Any]) -> dict[str, Any]:
    await add_silence(store, row)
    if audit is not None:
        await audit.try_record("alerts.silence", actor=row["creator"], target=row["id"],
                               detail={"matchers": row["matchers"], "reason": row["reason"],
                                       "starts_at": row["starts_at"],
                                       "ends_at": row["ends_at"]})
    return row


async def lift(store: Store, audit: AuditLog | None, silence_id: str, *, by: str,
               now: float, team: str | None = None) -> dict[str, Any]:
    found = await get_silence(store, silence_id)
    if found is None:
        raise NotFound(f"no silence '{silence_id[:64]}'; GET /api/alerts/silences lists them")
    check_team(found, team)
    row = await lift_silence(store, silence_id, by=by, at=now)
    assert row is not None
    if audit is not None and row["lifted_at"] == now:
        await audit.try_record("alerts.unsilence", actor=by, target=silence_id,
                               detail={"matchers": row["matchers"]})
    return row
