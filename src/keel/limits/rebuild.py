"""Budget counters Redis lost, rebuilt from the store; spend Redis missed, paid back.

Redis is a cache of the truth: the store's traces (and their rollups) are what was spent.
A budget counter is built from the store's spend of its period before anything is admitted
against it (``SEED``), the first time one is needed and again whenever Redis lost it
(a restart without persistence, an eviction, a failover to an empty replica): ``ADMIT``
finds the ``seeded`` marker missing and answers "needs seed". Each replica loads a
budget's spend from the store once per loss (concurrent requests wait for the same load);
seeding is set-if-not-seeded, so replicas seeding at once count nothing twice.

Settlements Redis did not take (it was unreachable, or the request was admitted without
counting under ``on_store_error: open``) are kept in ``Unsettled`` and sent again when
Redis answers: the reservation is dropped if it is still there, and the spend added if the
reservation was still there or the counter was seeded before the settlement: a counter
rebuilt later already has those requests' traces.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from sqlalchemy.exc import SQLAlchemyError

from keel.limits.backend import Repayment
from keel.limits.periods import PeriodClock
from keel.limits.redis_backend import RedisBackend
from keel.limits.rules import BudgetRule, BudgetTarget, Rules, to_nano
from keel.store import Store
from keel.store.spend import period_spend

log = logging.getLogger("keel.limits")

STORE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
PERIOD_GRACE_S = 86_400  # budget keys outlive their period by a day
UNSETTLED_MAX = 100_000  # (budget, second) entries kept while Redis is unreachable
_COLUMN = {"key": "key_id", "team": "team", "feature": "feature"}
T = TypeVar("T")


class SpendUnavailable(Exception):
    """The store could not give a budget's spend (so its counter cannot be rebuilt)."""


def epoch_ms() -> int:
    """Wall-clock milliseconds: seed marks and unsettled spend are compared across
    replicas (whatever clock a ``Limits`` uses for periods)."""
    return int(time.time() * 1000)


def key_ttl(end: float | None, now: float) -> int:
    """Seconds a budget key lives: its period and a day (0: a total budget, no expiry)."""
    return 0 if end is None else max(1, math.ceil(end - now)) + PERIOD_GRACE_S


async def load_spend(store: Store, rule: BudgetRule, start: float, end: float | None,
                     value: str | None) -> dict[str, float]:
    """The rule's spend in its current period per value (one value, or all for ``*``)."""
    return await period_spend(store, _COLUMN[rule.scope],
                              since=None if end is None else start, value=value)


class Rebuilder:
    """Seeds the Redis budget counters of one process from the store.

    After a loss, the first counter needed of a ``*`` rule rebuilds all of the rule's
    instances with one grouped query (and sets the rule's marker); while the marker is
    there, a counter still missing is a new instance (or one evicted alone) and is built
    from its own query. Concurrent needs of one counter or one rule share one query."""

    def __init__(self, store: Store, rules: Rules, backend: RedisBackend,
                 retry_interval_s: Callable[[], float]) -> None:
        self.store = store
        self.rules = rules
        self.backend = backend
        self.retry_interval_s = retry_interval_s
        self._periods = PeriodClock()
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._store_down_until = 0.0  # monotonic: do not ask the store before then
        self.seeded = 0  # counters this process built (for logs and tests)
        self.queries = 0  # spend queries this process sent to the store

    def marker(self, rule: BudgetRule, pk: str) -> str:
        return f"{self.rules.prefix}budget-seeded:{rule.scope}:{rule.match}:{pk}"

    async def seed(self, targets: list[BudgetTarget], now: float) -> None:
        """Build these budget instances' counters in their current period. Raises a Redis
        error or ``SpendUnavailable``."""
        jobs = []
        wild: dict[BudgetRule, list[BudgetTarget]] = {}
        for t in targets:
            if t.rule.match == "*":
                wild.setdefault(t.rule, []).append(t)
            else:
                jobs.append(self._instance(t, now))
        jobs += [self._wildcard(rule, group, now) for rule, group in wild.items()]
        await asyncio.gather(*jobs)

    async def seed_rule(self, rule: BudgetRule, now: float) -> None:
        """Build the counters of every instance of ``rule`` with spend in its current
        period, unless that was done since Redis last lost its data (the rule's marker)."""
        pk, _, _ = self._periods.current(rule.period, now)
        marker = self.marker(rule, pk)
        if not await self.backend.seeded(marker):
            await self._shared(marker, lambda: self._rule(rule, now))

    async def _wildcard(self, rule: BudgetRule, group: list[BudgetTarget],
                        now: float) -> None:
        pk, _, end = self._periods.current(rule.period, now)
        marker = self.marker(rule, pk)
        if await self._shared("exists:" + marker, lambda: self.backend.seeded(marker)):
            await asyncio.gather(*(self._instance(t, now) for t in group))
            return
        stamp, sums = await self._shared(marker, lambda: self._rule(rule, now))
        ttl = key_ttl(end, now)
        new = [(t.keys(pk), 0, ttl) for t in group if t.value not in sums]
        if new:  # nothing stored for them when the rule's spend was read
            self.seeded += await self.backend.seed(new, stamp, now)

    async def _instance(self, t: BudgetTarget, now: float) -> None:
        pk, start, end = self._periods.current(t.rule.period, now)

        async def one() -> None:
            stamp = epoch_ms()  # before the query: traces stored after it are not in it
            spent = (await self._spend(t.rule, start, end, t.value)).get(t.value, 0.0)
            self.seeded += await self.backend.seed(
                [(t.keys(pk), to_nano(spent), key_ttl(end, now))], stamp, now)

        await self._shared(t.keys(pk)[0], one)

    async def _rule(self, rule: BudgetRule, now: float) -> tuple[int, dict[str, float]]:
        pk, start, end = self._periods.current(rule.period, now)
        stamp = epoch_ms()
        sums = await self._spend(rule, start, end, None if rule.match == "*" else rule.match)
        if rule.match != "*":
            sums.setdefault(rule.match, 0.0)
        ttl = key_ttl(end, now)
        items = [(self.rules.budget_target(rule, value).keys(pk), to_nano(usd), ttl)
                 for value, usd in sorted(sums.items())]
        done = await self.backend.seed(items, stamp, now)
        self.seeded += done
        await self.backend.mark_seeded(self.marker(rule, pk), stamp, ttl)
        if done:
            log.info("budgets: %d %s %s:%s counters built from the stored spend", done,
                     rule.period, rule.scope, rule.match)
        return stamp, sums

    async def _shared(self, key: str, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` once for everyone who needs ``key`` meanwhile; a waiter that
        is cancelled does not cancel it for the others."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(make())
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._done, key))
        return cast(T, await asyncio.shield(task))

    def _done(self, key: str, task: asyncio.Task[Any]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have gone

    async def _spend(self, rule: BudgetRule, start: float, end: float | None,
                     value: str | None) -> dict[str, float]:
        mono = time.monotonic()
        if mono < self._store_down_until:
            raise SpendUnavailable("the store did not answer a moment ago")
        self.queries += 1
        try:
            return await load_spend(self.store, rule, start, end, value)
        except STORE_ERRORS as exc:
            self._store_down_until = mono + self.retry_interval_s()
            raise SpendUnavailable(f"{type(exc).__name__}: {exc}") from exc


class Unsettled:
    """Settlements Redis did not take (it was unreachable), to be sent again: what a
    counted admission reserved and spent, one entry each, and the spend of admissions
    made without counting (``on_store_error: open``), summed per budget and second. Each
    keeps the epoch ms of its earliest settlement. Bounded: past ``max_entries`` new
    entries are dropped and counted in ``dropped`` (their reservations expire with the
    reservation ttl; a counter rebuilt from the store has their spend)."""

    def __init__(self, max_entries: int = UNSETTLED_MAX) -> None:
        self.max_entries = max_entries
        self._held: list[Repayment] = []
        self._spend: dict[tuple[str, str], dict[int, list[int]]] = {}
        self._entries = 0
        self.dropped = 0

    def __bool__(self) -> bool:
        return self._entries > 0

    def __len__(self) -> int:
        return self._entries

    def add_held(self, bkeys: list[tuple[str, str]], member: str, amount: int, actual: int,
                 at_ms: int) -> None:
        """A counted admission (reservation ``member`` of ``amount``) that spent
        ``actual``."""
        for bkey, rkey in bkeys:
            if self._full():
                return
            self._held.append((bkey, rkey, member, amount, actual, at_ms))
            self._entries += 1

    def add_spend(self, bkeys: list[tuple[str, str]], actual: int, at_ms: int) -> None:
        """An admission made without counting that spent ``actual``."""
        if actual <= 0:
            return
        sec = at_ms // 1000
        for pair in bkeys:
            per = self._spend.setdefault(pair, {})
            entry = per.get(sec)
            if entry is not None:
                entry[0] = min(entry[0], at_ms)
                entry[1] += actual
            elif not self._full():
                per[sec] = [at_ms, actual]
                self._entries += 1

    def _full(self) -> bool:
        if self._entries >= self.max_entries:
            self.dropped += 1
            return True
        return False

    def take(self) -> list[Repayment]:
        """Everything held; the ledger is empty after (``put_back`` what was not sent)."""
        out = self._held
        out += [(bkey, rkey, "", 0, total, at) for (bkey, rkey), per in self._spend.items()
                for at, total in per.values()]
        self._held = []
        self._spend = {}
        self._entries = 0
        return out

    def put_back(self, items: list[Repayment]) -> None:
        for bkey, rkey, member, amount, actual, at in items:
            if member:
                self.add_held([(bkey, rkey)], member, amount, actual, at)
            else:
                self.add_spend([(bkey, rkey)], actual, at)
