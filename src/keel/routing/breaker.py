"""Circuit breakers, one per deployment.

closed --(N consecutive failures, or failure rate >= R over the window with at least M
requests)--> open --(cooldown)--> half-open --(probe succeeds)--> closed
                                            \\--(probe fails)--> open

Each replica counts failures itself and decides locally, so checking a breaker costs no
network round trip. When a replica opens a circuit it also publishes it in Redis (a key
that expires with the cooldown); every replica polls those keys in the background
(``BreakerBoard.sync``) and honours circuits opened elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from keel.config import BreakerSpec

log = logging.getLogger("keel.routing")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Breaker:
    __slots__ = ("_events", "_probe_out", "consecutive", "deployment", "opened_until", "spec",
                 "state")

    def __init__(self, deployment: str, spec: BreakerSpec) -> None:
        self.deployment = deployment
        self.spec = spec
        self.state = CLOSED
        self.opened_until = 0.0
        self.consecutive = 0
        self._events: deque[tuple[float, bool]] = deque()  # (time, failed)
        self._probe_out = False

    def available(self, now: float) -> bool:
        """Could a request go here now? (No side effect: see ``allows``.)"""
        if self.state == CLOSED or self.spec.enabled is False:
            return True
        if self.state == OPEN and now < self.opened_until:
            return False
        return not self._probe_out

    def allows(self, now: float | None = None) -> bool:
        """May a request go to this deployment now? (A half-open circuit lets one probe.)"""
        if self.state == CLOSED or self.spec.enabled is False:
            return True
        now = time.monotonic() if now is None else now
        if self.state == OPEN:
            if now < self.opened_until:
                return False
            self.state, self._probe_out = HALF_OPEN, False
        if self._probe_out:
            return False
        self._probe_out = True
        return True

    def record(self, ok: bool, now: float | None = None) -> bool:
        """Count an outcome; returns True when this outcome opened the circuit."""
        if self.spec.enabled is False:
            return False
        now = time.monotonic() if now is None else now
        if self.state == HALF_OPEN:
            self._probe_out = False
            if ok:
                self._close()
                return False
            self._open(now)
            return True
        events = self._events
        events.append((now, not ok))
        horizon = now - self.spec.window_s
        while events and events[0][0] < horizon:
            events.popleft()
        if ok:
            self.consecutive = 0
            return False
        self.consecutive += 1
        if self.state == OPEN:
            return False
        if self.consecutive >= self.spec.failures:
            self._open(now)
            return True
        if len(events) >= self.spec.min_requests:
            failed = sum(1 for _, f in events if f)
            if failed / len(events) >= self.spec.failure_rate:
                self._open(now)
                return True
        return False

    def open_for(self, seconds: float, now: float | None = None) -> None:
        """Honour a circuit opened by another replica."""
        now = time.monotonic() if now is None else now
        if self.state != OPEN or self.opened_until < now + seconds:
            self.state, self.opened_until = OPEN, now + seconds

    def _open(self, now: float) -> None:
        self.state = OPEN
        self.opened_until = now + self.spec.cooldown_s
        log.warning("circuit for deployment %s opened for %.0fs", self.deployment,
                    self.spec.cooldown_s)

    def _close(self) -> None:
        self.state = CLOSED
        self.consecutive = 0
        self._events.clear()


class BreakerBoard:
    """All breakers of a process, and their sharing through Redis."""

    def __init__(self, redis: Any = None, prefix: str = "keel:") -> None:
        self.breakers: dict[str, Breaker] = {}
        self.redis = redis
        self.prefix = prefix + "cb:"
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def add(self, deployment: str, spec: BreakerSpec) -> Breaker:
        b = self.breakers[deployment] = Breaker(deployment, spec)
        return b

    def record(self, breaker: Breaker, ok: bool) -> None:
        if breaker.record(ok) and self.redis is not None:
            task = asyncio.get_running_loop().create_task(self._publish(breaker))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _publish(self, breaker: Breaker) -> None:
        try:
            ms = max(int(breaker.spec.cooldown_s * 1000), 1)
            await self.redis.set(self.prefix + breaker.deployment, b"1", px=ms)
        except Exception as exc:  # Redis down: the circuit still holds on this replica
            log.warning("could not share open circuit %s: %s", breaker.deployment, exc)

    async def sync(self) -> None:
        """Adopt circuits other replicas opened (one MGET + PTTL pipeline per poll)."""
        if self.redis is None or not self.breakers:
            return
        names = list(self.breakers)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.pttl(self.prefix + name)
        ttls = await pipe.execute()
        now = time.monotonic()
        for name, ttl in zip(names, ttls, strict=True):
            if isinstance(ttl, int) and ttl > 0:
                self.breakers[name].open_for(ttl / 1000.0, now)

    async def start(self, interval_s: float = 0.5) -> None:
        if self.redis is not None and self.breakers:
            self._task = asyncio.create_task(self._poll(interval_s), name="keel-breaker-sync")

    async def _poll(self, interval_s: float) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sync()
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("circuit sync with Redis failing (%s); local circuits only", exc)
                failing = True

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._pending):
            with contextlib.suppress(Exception):
                await task

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [{"deployment": b.deployment, "state": b.state,
                 "open_for_s": max(0.0, b.opened_until - now) if b.state == OPEN else 0.0,
                 "consecutive_failures": b.consecutive} for b in self.breakers.values()]
