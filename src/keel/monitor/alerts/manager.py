"""The alert loop of ``keel serve``: evaluate every rule each tick, carry each series' track,
and notify the receivers.

Each ``interval`` (``alerts.interval``, ticks aligned to the clock), every replica tries to
claim the tick in the store; the one that does evaluates (``keel.store.alerts.claim_tick``),
so N replicas evaluate once per tick and any of them takes over when another stops. A tick:

1. ``evaluate`` every rule (the config's and the built-ins) over the rollups;
2. step each series' ``Track`` (``tracking``) from the stored one: pending, firing,
   resolved; every transition is stored;
3. leave out of the notifications the firing alerts a silence in force matches, and those
   an inhibition mutes (``routing``);
4. group the rest, decide what to send (first firing, a change, ``repeat_interval``, the
   resolution), store tracks, transitions and groups in one transaction, then hand the
   notifications to the ``Dispatcher`` (which retries per receiver, in the background).

``current(store, now)`` is the state to show: every series with its last evaluation, phase,
severity, and the silences and inhibition that hold for it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from keel.config import KeelConfig
from keel.config.alerts import AlertRule, Inhibition
from keel.monitor.alerts.builtin_rules import rules_for
from keel.monitor.alerts.evaluate import evaluate
from keel.monitor.alerts.model import Evaluation, State
from keel.monitor.alerts.routing import (
    BUILTIN_INHIBITIONS,
    Candidate,
    inhibited_by,
    plan,
    severity_of,
    silenced_by,
)
from keel.monitor.alerts.tracking import Phase, Track, Transition, track_all
from keel.notify.dispatch import Dispatcher
from keel.notify.model import Notification
from keel.polling import Poller
from keel.store import Store
from keel.store.alerts import (
    claim_tick,
    list_silences,
    load_groups,
    load_tracks,
    save_tick,
)

__all__ = ["AlertManager", "TickResult", "current"]

log = logging.getLogger("keel.alerts")


def replica_name() -> str:
    """This process's name in the tick claims: host, pid and a random part (two keels in
    one process are two replicas)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(slots=True)
class TickResult:
    tick: float
    evaluations: list[Evaluation] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    inhibited: dict[str, str] = field(default_factory=dict)
    silenced: dict[str, list[str]] = field(default_factory=dict)


def _evaluation_row(ev: Evaluation, inhibitor: str | None) -> dict[str, Any]:
    return {**ev.as_dict(), "inhibited_by": inhibitor}


def _evaluation_of(row: dict[str, Any]) -> tuple[Evaluation, str | None]:
    data = dict(row)
    inhibitor = data.pop("inhibited_by", None)
    return Evaluation.from_dict(data), inhibitor


class AlertManager:
    """Evaluates ``config``'s alert rules on ``store`` and notifies through ``dispatcher``
    (None: evaluate and track, notify nobody); see the module docstring."""

    def __init__(self, store: Store, config: KeelConfig, dispatcher: Dispatcher | None = None,
                 *, public_url: str | None = None, replica: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config.alerts
        self.rules: list[AlertRule] = rules_for(config.alerts)
        self.by_name = {r.name: r for r in self.rules}
        self.value_units = {f.name: f.value_unit for f in config.features if f.value_unit}
        self.inhibitions: list[Inhibition] = [
            *(BUILTIN_INHIBITIONS if config.alerts.builtin_inhibitions else ()),
            *config.alerts.inhibit]
        self.dispatcher = dispatcher
        self.receivers = config.alerts.receivers  # None: all
        self.public_url = public_url
        self.replica = replica or replica_name()
        self.clock = clock
        self.interval_s = float(config.alerts.interval_s)
        self._poller = Poller("keel-alerts", log,
                              "alert evaluation failed; the next tick tries again")
        self.last_error: str | None = None

    def tick_of(self, now: float) -> float:
        return math.floor(now / self.interval_s) * self.interval_s

    async def tick(self, now: float | None = None) -> TickResult | None:
        """Evaluate now, if this replica claims the tick (None: another one did)."""
        now = self.clock() if now is None else now
        tick = self.tick_of(now)
        if not await claim_tick(self.store, tick, self.replica):
            return None
        try:
            return await self._evaluate(tick, now)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                await save_tick(self.store, tick, tracks=[], dropped=[], events=[], groups=[],
                                series=0, error=self.last_error[:2000])
            raise

    async def _evaluate(self, tick: float, now: float) -> TickResult:
        result = TickResult(tick)
        result.evaluations = await evaluate(self.store, self.rules, now,
                                            value_units=self.value_units)
        rows = await load_tracks(self.store)
        before = {r["key"]: Track.from_dict(r["track"]) for r in rows
                  if r["rule"] in self.by_name}
        last = {r["key"]: _evaluation_of(r["evaluation"])[0] for r in rows
                if r["rule"] in self.by_name}
        dropped = [r["key"] for r in rows if r["rule"] not in self.by_name]
        settings = {r.name: (r.for_, r.keep_firing_for) for r in self.rules}
        tracks, result.transitions = track_all(before, result.evaluations, settings, now)
        evaluated = {ev.key: ev for ev in result.evaluations}
        latest = {**last, **evaluated}
        silences = await list_silences(self.store, active_at=now)
        firing: list[Candidate] = []
        for key, t in tracks.items():
            ev = latest.get(key)
            if t.phase is Phase.FIRING and ev is not None:
                rule = self.by_name[ev.rule]
                firing.append(Candidate(key, ev.rule, rule.kind, rule.measure,
                                        severity_of(t.severity), ev, t.fired_at or now))
        result.inhibited = inhibited_by(firing, self.inhibitions)
        for c in firing:
            ids = silenced_by(c.labels, silences)
            if ids:
                result.silenced[c.key] = ids
        muted = set(result.inhibited) | set(result.silenced)
        resolved: dict[str, Candidate] = {}
        for change in result.transitions:
            if change.kind != "resolved":
                continue
            ev = evaluated[change.key]
            rule = self.by_name[ev.rule]
            was = before.get(change.key)
            resolved[change.key] = Candidate(
                change.key, ev.rule, rule.kind, rule.measure,
                severity_of(was.severity) if was else "warning", ev,
                (was.fired_at if was and was.fired_at else now))
        groups = plan([c for c in firing if c.key not in muted], muted, resolved,
                      await load_groups(self.store), group_by=self.config.group_by,
                      repeat_s=self.config.repeat_interval_s, now=now,
                      public_url=self.public_url)
        result.notifications = groups.notifications
        track_rows = []
        for key, ev in evaluated.items():
            t = tracks[key]
            track_rows.append({
                "key": key, "rule": ev.rule, "series": ev.series, "phase": t.phase.value,
                "severity": t.severity.value, "track": t.as_dict(),
                "evaluation": _evaluation_row(ev, result.inhibited.get(key)),
                "updated_at": now})
        events = [{"key": c.key, "rule": evaluated[c.key].rule, "kind": c.kind,
                   "severity": c.severity.value, "at": c.at,
                   "evaluation": evaluated[c.key].as_dict()} for c in result.transitions]
        await save_tick(self.store, tick, tracks=track_rows, dropped=dropped, events=events,
                        groups=groups.rows, series=len(track_rows))
        if self.dispatcher is not None:
            for n in result.notifications:
                self.dispatcher.submit(n, self.receivers)
        self.last_error = None
        return result

    # -- the loop ------------------------------------------------------------------------

    def start(self) -> None:
        self._poller.start(self.tick, self.interval_s, aligned=True, after_s=0.5,
                           clock=self.clock)

    async def aclose(self) -> None:
        await self._poller.stop()


def _shown(ev: Evaluation, phase: str, silences: list[str]) -> str:
    if silences and (phase == "firing" or ev.state.breaching):
        return State.SILENCED.value
    return ev.state.value


async def current(store: Store, now: float | None = None, *,
                  rules: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every tracked series as the console and the API show it, firing first."""
    now = time.time() if now is None else now
    silences = await list_silences(store, active_at=now)
    out = []
    for row in await load_tracks(store):
        if rules is not None and row["rule"] not in rules:
            continue
        ev, inhibitor = _evaluation_of(row["evaluation"])
        track = Track.from_dict(row["track"])
        labels = {"rule": ev.rule, **ev.series}
        ids = silenced_by(labels, silences)
        out.append({
            "key": row["key"], "rule": ev.rule, "series": ev.series,
            "state": _shown(ev, track.phase.value, ids), "evaluated_state": ev.state.value,
            "phase": track.phase.value,
            "severity": severity_of(track.severity) if track.phase is not Phase.INACTIVE
            else None,
            "value": ev.value, "compared_with": ev.compared_with, "n": ev.n,
            "reason": ev.reason, "since": track.since, "fired_at": track.fired_at,
            "evaluated_at": row["updated_at"], "window": [ev.since, ev.until],
            "silenced_by": ids, "inhibited_by": inhibitor})
    order = {"firing": 0, "pending": 1, "inactive": 2}
    out.sort(key=lambda a: (order.get(a["phase"], 3), a["severity"] != "critical",
                            a["rule"], a["key"]))
    return out
