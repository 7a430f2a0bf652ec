"""Per-feature kill switches: ``keel features stop F --reason ...`` refuses every request
attributed to feature F (chat, messages, embeddings, and keel's own internal calls) with a
503 ``feature_stopped`` until the feature is started again. Stops and starts are recorded
in the audit log.

The gateway checks an in-memory set — no database round trip per request — reloaded when
the switches' version counter in the store changes (polled every KEEL_REFRESH_INTERVAL_S,
and at once after a change made in this process).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from keel.audit import AuditLog, content_hash
from keel.errors import FeatureStopped, InvalidRequest
from keel.polling import Poller
from keel.store import Store
from keel.store import switches as q

log = logging.getLogger("keel.switches")
MAX_FEATURE = 128
MAX_REASON = 1000


def utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def check_name(feature: str) -> str:
    feature = feature.strip() if isinstance(feature, str) else ""
    if not feature or len(feature) > MAX_FEATURE:
        raise InvalidRequest(f"a feature name must be 1 to {MAX_FEATURE} characters",
                             param="feature")
    return feature


def check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidRequest("'reason' is required: say why the feature is stopped",
                             param="reason")
    if len(reason) > MAX_REASON:
        raise InvalidRequest(f"'reason' must be at most {MAX_REASON} characters",
                             param="reason")
    return reason.strip()


class FeatureSwitches:
    def __init__(self, store: Store, *, audit: AuditLog | None = None) -> None:
        self.store = store
        self.audit = audit or AuditLog.from_settings(store)
        self.stopped: dict[str, dict[str, Any]] = {}  # feature -> its switch row
        self._version: str | None = None
        self._poller = Poller("keel-feature-switches", log,
                              "refreshing feature switches failed; keeping those in memory")

    # --- index -------------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> None:
        version = await q.switches_version(self.store)
        if not force and version == self._version:
            return
        rows = await q.all_switches(self.store)
        self.stopped = {r["feature"]: r for r in rows if r["stopped"]}
        self._version = version

    async def start(self, interval_s: float) -> None:
        await self.refresh(force=True)
        self._poller.start(self.refresh, interval_s)

    async def aclose(self) -> None:
        await self._poller.stop()

    # --- the check (in memory) ---------------------------------------------------------------

    def check(self, feature: str | None) -> None:
        """Raise ``FeatureStopped`` if ``feature`` is stopped."""
        row = self.stopped.get(feature) if feature is not None else None
        if row is not None:
            raise stopped_error(row)

    # --- writes ------------------------------------------------------------------------------

    async def stop_feature(self, feature: str, *, reason: Any,
                           actor: str | None) -> dict[str, Any]:
        return await self._set(check_name(feature), True, check_reason(reason), actor)

    async def start_feature(self, feature: str, *, actor: str | None) -> dict[str, Any]:
        return await self._set(check_name(feature), False, None, actor)

    async def _set(self, feature: str, stopped: bool, reason: str | None,
                   actor: str | None) -> dict[str, Any]:
        before, after = await q.set_switch(self.store, feature, stopped=stopped, reason=reason,
                                           actor=actor)
        await self.refresh(force=True)
        await self.audit.try_record(
            "feature.stop" if stopped else "feature.start", actor=actor, target=feature,
            before=content_hash(before) if before else None, after=content_hash(after),
            detail={"reason": reason,
                    "was_stopped": bool(before and before["stopped"])})
        return public(after)

    async def rows(self) -> list[dict[str, Any]]:
        return [public(r) for r in await q.all_switches(self.store)]


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {"feature": row["feature"], "state": "stopped" if row["stopped"] else "running",
            "since": row["at"], "by": row["actor"], "reason": row["reason"]}


def stopped_error(row: dict[str, Any]) -> FeatureStopped:
    f = row["feature"]
    return FeatureStopped(
        f"feature '{f}' is stopped since {utc(row['at'])} by {row['actor'] or 'unknown'}: "
        f"{row['reason']}; start it with `keel features start {f}` or "
        f"POST /api/features/{f}/start", param="feature")
