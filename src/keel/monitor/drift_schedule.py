"""Drift checked on a schedule in ``keel serve`` (the ``drift:`` section), and on demand.

Every ``interval`` one replica claims the tick (``keel.store.alerts.claim_tick`` with job
``drift``) and checks each feature: its last ``current`` window against the ``reference``
before it, ``sample`` traces sampled from each (``drift_windows``: bounded lookups, never a
scan), the report stored (``drift_reports``). The alert measures ``drift`` and
``drift_auc`` read each feature's latest report, so drift fires, groups, silences and
notifies like any alert (the built-in rule ``keel.drift``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from keel.config import KeelConfig
from keel.monitor.alerts.model import json_safe
from keel.monitor.drift_windows import check_feature, report_json
from keel.polling import Poller
from keel.store import Store
from keel.store.alerts import claim_tick
from keel.store.drift import insert_report

__all__ = ["DriftMonitor", "features_of"]

log = logging.getLogger("keel.drift")
JOB = "drift"


class DriftMonitor:
    def __init__(self, store: Store, config: KeelConfig, *, replica: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config.drift
        self.features = features_of(config)
        self.replica = replica
        self.clock = clock
        self.interval_s = float(config.drift.interval_s)
        self._poller = Poller("keel-drift", log,
                              "drift checks failed; the next tick tries again")

    async def check(self, feature: str, now: float | None = None) -> dict[str, Any]:
        """Check ``feature`` now, store the report; the stored row."""
        now = self.clock() if now is None else now
        c = self.config
        report, windows = await check_feature(self.store, feature, now,
                                              current_s=c.current_s,
                                              reference_s=c.reference_s, sample=c.sample)
        auc = report.classifier.auc if report.classifier is not None else None
        row = {"feature": feature, "at": now,
               "reference_since": windows["reference"][0],
               "reference_until": windows["reference"][1],
               "current_since": windows["current"][0], "current_until": windows["current"][1],
               "n_reference": report.n_reference, "n_current": report.n_current,
               "drifted": report.drifted, "auc": auc,
               "report": json_safe(report_json(report, windows))}
        row["id"] = await insert_report(self.store, row)
        return row

    async def tick(self, now: float | None = None) -> list[dict[str, Any]] | None:
        """Check every feature, if this replica claims the tick (None: another did)."""
        now = self.clock() if now is None else now
        tick = math.floor(now / self.interval_s) * self.interval_s
        if not self.features or not await claim_tick(self.store, tick, self.replica, JOB):
            return None
        out = []
        for feature in self.features:
            try:
                out.append(await self.check(feature, now))
            except Exception:
                log.exception("drift check of feature %s failed; the next tick tries again",
                              feature)
        return out

    def start(self) -> None:
        if self.features:
            self._poller.start(self.tick, self.interval_s, aligned=True, after_s=1.0,
                               clock=self.clock)

    async def aclose(self) -> None:
        await self._poller.stop()


def features_of(config: KeelConfig) -> list[str]:
    """The features drift is checked for: ``drift.features``, else every declared one."""
    if config.drift.features is not None:
        return list(config.drift.features)
    return [f.name for f in config.features]
