"""``Limits``: rate limits and budgets for the gateway, over the memory or Redis backend.

``admit`` checks every matching rate limit and reserves the worst-case cost in every
matching budget, all or nothing, in one step (one Lua call with Redis). ``settle`` adds
the actual cost and the tokens used, ``release`` gives the reservation back.

When Redis cannot be reached, rate limits fail open and budgets follow their
``on_store_error`` (``closed``: refuse with ``LimitsUnavailable``; ``open``: admit).
After a failure Redis is left alone for ``retry_interval_s`` so a dead Redis costs no
time per request, and the degradation is logged at most every ``WARN_INTERVAL_S``.

Redis holds a cache of the spend, the store holds the truth: a budget counter Redis does
not have (lost in a restart, evicted, never built) is rebuilt from the store's spend
before anything is admitted against it, and spend Redis missed while it was unreachable
is added back when it answers (``keel.limits.rebuild``). The same ``on_store_error``
applies when a counter must be rebuilt and the store does not answer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.config import KeelConfig, extras
from keel.errors import LimitsUnavailable
from keel.limits.backend import NeedsSeed
from keel.limits.memory import MemoryBackend
from keel.limits.messages import refusal_error, unavailable, warn_soft
from keel.limits.periods import PeriodClock
from keel.limits.rebuild import (
    Rebuilder,
    SpendUnavailable,
    Unsettled,
    epoch_ms,
    key_ttl,
    load_spend,
)
from keel.limits.redis_backend import RedisBackend
from keel.limits.rules import (
    EMPTY_PLAN,
    BudgetRule,
    BudgetTarget,
    Plan,
    Rules,
    from_nano,
    to_nano,
)
from keel.store import Store

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("keel.limits")

RESERVATION_TTL_S = 900.0
WARN_INTERVAL_S = 30.0
SEED_ATTEMPTS = 3  # admit, rebuild the missing counters, admit again (and once more)
REPAY_CHUNK = 500


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis call raises when Redis is down or slow; read when an exception arrives,
    so that nothing imports redis before a Redis client exists (keel.config.extras)."""
    return (extras.RedisError, OSError, TimeoutError)


@dataclass(slots=True)
class LimitRequest:
    request_id: str  # the trace id; used as the budget reservation id
    key_id: str | None
    team: str
    feature: str
    model: str  # the name the client asked for (a model or a route name)
    worst_case_usd: float  # reserved before the call


class Admission:
    """What ``admit`` counted, so ``settle``/``release`` can undo or complete it."""

    __slots__ = ("amount", "bkeys", "degraded", "done", "ends", "plan", "rid")

    def __init__(self, plan: Plan, bkeys: list[tuple[str, str]], ends: list[float | None],
                 amount: int, rid: str) -> None:
        self.plan = plan
        self.bkeys = bkeys
        self.ends = ends
        self.amount = amount
        self.rid = rid
        self.degraded = False  # admitted without counting (Redis unreachable)
        self.done = not bkeys and not plan.tpm  # nothing to settle


_NOOP = Admission(EMPTY_PLAN, [], [], 0, "")  # done from the start: settle does nothing


class Limits:
    """Rate limits and budgets of one process. ``redis`` None: in-process counters.
    Knobs for tests and operators: ``reservation_ttl_s`` (how long an unsettled reservation
    counts), ``retry_interval_s`` (how long Redis is left alone after a failure) and
    ``clock`` (epoch seconds)."""

    def __init__(self, config: KeelConfig, store: Store, redis: Redis | None, *,
                 prefix: str = "keel:", reservation_ttl_s: float = RESERVATION_TTL_S,
                 retry_interval_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.rules = Rules(config, prefix)
        self.store = store
        self.prefix = prefix
        self.clock = clock
        self.retry_interval_s = retry_interval_s
        self.memory: MemoryBackend | None = None
        self.redis: RedisBackend | None = None
        self.rebuild: Rebuilder | None = None
        if redis is None:
            self.memory = MemoryBackend(reservation_ttl_s)
        else:
            self.redis = RedisBackend(redis, reservation_ttl_s)
            self.rebuild = Rebuilder(store, self.rules, self.redis,
                                     lambda: self.retry_interval_s)
        self.backend_name = "memory" if redis is None else "redis"
        self._active = self.rules.active
        self._periods = PeriodClock()
        self._down_until = 0.0  # monotonic: skip Redis until then
        self._failures = 0
        self._warned_at = -math.inf
        self._degraded = False
        self._store_warned_at = -math.inf
        self.unsettled = Unsettled()  # spend Redis has not counted yet
        self._settle_queue: list[tuple[Admission, int, int]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._repayer: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._active

    async def start(self) -> None:
        if not self._active:
            return
        if self.redis is not None:
            try:
                await self.redis.load()
            except _redis_errors() as exc:
                self._failed(exc)
        await self._reconcile()

    async def aclose(self) -> None:
        """Finish queued settlements (counters live in memory or in Redis; the client is
        the caller's)."""
        await self.flush()
        if self.unsettled:
            log.warning("budgets: %d settlements Redis did not take are dropped at shutdown "
                        "(the store has their traces: a counter rebuilt from it counts them)",
                        len(self.unsettled))

    async def flush(self) -> None:
        """Wait until every queued settlement has been sent (and unsettled spend paid
        back, if Redis answers)."""
        while self._flusher is not None or self._repayer is not None:
            if self._flusher is not None:
                await self._flusher
            if self._repayer is not None:
                await self._repayer

    # --- hot path ------------------------------------------------------------------------

    async def admit(self, req: LimitRequest) -> Admission:
        if not self._active:
            return _NOOP
        plan = self.rules.plan(req.key_id, req.team, req.feature, req.model)
        if plan.empty:
            return _NOOP
        now = self.clock()
        bkeys: list[tuple[str, str]] = []
        ends: list[float | None] = []
        for t in plan.budgets:
            pk, _, end = self._periods.current(t.rule.period, now)
            bkeys.append(t.keys(pk))
            ends.append(end)
        adm = Admission(plan, bkeys, ends, to_nano(req.worst_case_usd), req.request_id)
        if self.memory is not None:
            refusal = self.memory.admit(plan.limits, bkeys,
                                        [t.rule.limit_nano for t in plan.budgets],
                                        adm.amount, adm.rid, now)
        else:
            if self._down_until and time.monotonic() < self._down_until:
                return self._degrade(adm, None)
            args: list[int] = []
            for t, end in zip(plan.budgets, ends, strict=True):
                args += (t.rule.limit_nano, key_ttl(end, now))
            for _ in range(SEED_ATTEMPTS):
                try:
                    got = await self._redis().admit(plan.limits, bkeys, args, adm.amount,
                                                    adm.rid, now)
                    if not isinstance(got, NeedsSeed):
                        break
                    await self._rebuilder().seed([plan.budgets[k] for k in got.indexes], now)
                except _redis_errors() as exc:
                    return self._degrade(adm, exc)
                except SpendUnavailable as exc:
                    return self._degrade_store(adm, exc)
            else:  # rebuilt, and gone again before it could be used
                return self._degrade_store(adm, SpendUnavailable(
                    "budget counters disappeared from Redis as soon as they were rebuilt "
                    "(is Redis evicting keys?)"))
            refusal = got
            if self._degraded:
                self._recovered()
            if self.unsettled:
                self._repay_soon()
        if refusal is not None:
            raise refusal_error(plan, ends, adm.amount, refusal, now)
        return adm

    async def settle(self, adm: Admission, actual_usd: float, tokens: int) -> None:
        """After a successful call: spend ``actual_usd``, drop the reservation, count
        ``tokens`` in the tpm windows."""
        if adm.done:
            return
        adm.done = True
        await self._settle(adm, to_nano(actual_usd), max(int(tokens), 0))

    async def release(self, adm: Admission) -> None:
        """After a failed call: give the reservation back."""
        if adm.done:
            return
        adm.done = True
        if adm.bkeys and not adm.degraded:
            await self._settle(adm, 0, 0)

    def settle_soon(self, adm: Admission, actual_usd: float, tokens: int) -> None:
        """``settle`` without waiting, for the request path: in memory it is done at once;
        with Redis it is queued, and one task sends everything queued as one pipeline
        (no task or round trip per request)."""
        if adm.done:
            return
        adm.done = True
        self._enqueue(adm, to_nano(actual_usd), max(int(tokens), 0))

    def release_soon(self, adm: Admission) -> None:
        """``release`` without waiting (see ``settle_soon``)."""
        if adm.done:
            return
        adm.done = True
        if adm.bkeys and not adm.degraded:
            self._enqueue(adm, 0, 0)

    def _enqueue(self, adm: Admission, actual: int, tokens: int) -> None:
        if self.memory is not None:
            self._settle_memory(adm, actual, tokens)
            return
        if adm.degraded:  # admitted without counting: only counters that kept theirs
            self._unsettled([(adm, actual, tokens)])
            return
        self._settle_queue.append((adm, actual, tokens))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_settlements())

    async def _flush_settlements(self) -> None:
        try:
            while self._settle_queue:
                batch, self._settle_queue = self._settle_queue, []
                await self._settle_redis_batch(batch)
        finally:
            self._flusher = None

    async def _settle_redis_batch(self, batch: list[tuple[Admission, int, int]]) -> None:
        assert self.redis is not None
        if self._down_until and time.monotonic() < self._down_until:
            self._failed(None)
            self._unsettled(batch)
            return
        now = self.clock()
        calls = []
        for adm, actual, tokens in batch:
            args: list[int] = []
            for t, end in zip(adm.plan.budgets, adm.ends, strict=True):
                args += (t.rule.soft_nano, key_ttl(end, now))
            calls.append((adm.plan.tpm, adm.bkeys, args, adm.amount, adm.rid, actual, tokens))
        try:
            results = await self.redis.settle_many(calls, now)
        except _redis_errors() as exc:
            self._failed(exc)
            self._unsettled(batch)
            return
        for (adm, _, _), crossed in zip(batch, results, strict=True):
            if crossed:
                warn_soft(adm.plan, adm.ends, crossed)
        if self.unsettled:
            self._repay_soon()

    def _unsettled(self, batch: list[tuple[Admission, int, int]]) -> None:
        """Keep the spend of settlements Redis did not take, to be paid back."""
        at = epoch_ms()
        for adm, actual, _ in batch:
            if adm.degraded:
                self.unsettled.add_spend(adm.bkeys, actual, at)
            else:
                self.unsettled.add_held(adm.bkeys, f"{adm.amount}:{adm.rid}", adm.amount,
                                        actual, at)
        self._repay_soon()

    def _repay_soon(self) -> None:
        if (self._repayer is None and self.unsettled
                and not (self._down_until and time.monotonic() < self._down_until)):
            self._repayer = asyncio.get_running_loop().create_task(self._repay())

    async def _repay(self) -> None:
        """Add the unsettled spend to the counters Redis kept (see ``rebuild.Unsettled``)."""
        try:
            items = self.unsettled.take()
            added = 0
            for i in range(0, len(items), REPAY_CHUNK):
                try:
                    added += await self._redis().repay(items[i:i + REPAY_CHUNK])
                except _redis_errors() as exc:
                    self.unsettled.put_back(items[i:])
                    self._failed(exc)
                    return
            if added:
                log.info("budgets: %d settlements Redis missed while unreachable added to "
                         "its counters", added)
        finally:
            self._repayer = None

    def _settle_memory(self, adm: Admission, actual: int, tokens: int) -> None:
        assert self.memory is not None
        plan = adm.plan
        crossed = self.memory.settle(plan.tpm, adm.bkeys,
                                     [t.rule.soft_nano for t in plan.budgets],
                                     adm.amount, adm.rid, actual, tokens, self.clock())
        if crossed:
            warn_soft(adm.plan, adm.ends, crossed)

    async def _settle(self, adm: Admission, actual: int, tokens: int) -> None:
        now = self.clock()
        plan = adm.plan
        if self.memory is not None:
            crossed = self.memory.settle(plan.tpm, adm.bkeys,
                                         [t.rule.soft_nano for t in plan.budgets],
                                         adm.amount, adm.rid, actual, tokens, now)
        else:
            assert self.redis is not None
            if adm.degraded:
                self._unsettled([(adm, actual, tokens)])
                return
            if self._down_until and time.monotonic() < self._down_until:
                self._failed(None)
                self._unsettled([(adm, actual, tokens)])
                return
            args: list[int] = []
            for t, end in zip(plan.budgets, adm.ends, strict=True):
                args += (t.rule.soft_nano, key_ttl(end, now))
            try:
                crossed = await self.redis.settle(plan.tpm, adm.bkeys, args, adm.amount,
                                                  adm.rid, actual, tokens, now)
            except _redis_errors() as exc:
                self._failed(exc)
                self._unsettled([(adm, actual, tokens)])
                return
            if self.unsettled:
                self._repay_soon()
        if crossed:
            warn_soft(adm.plan, adm.ends, crossed)

    # --- degradation ----------------------------------------------------------------------

    def _degrade(self, adm: Admission, exc: BaseException | None) -> Admission:
        """Redis failed: admit without counting, or refuse (``on_store_error``)."""
        self._failed(exc)
        return self._uncounted(adm, "Redis is unreachable")

    def _uncounted(self, adm: Admission, why: str) -> Admission:
        """Admit without counting, or refuse if a matching budget is set to fail closed."""
        if adm.plan.fail_closed:
            raise unavailable(adm.plan.fail_closed[0], why, self.retry_interval_s)
        adm.degraded = True
        return adm

    def _degrade_store(self, adm: Admission, exc: SpendUnavailable) -> Admission:
        """A counter Redis lost could not be rebuilt from the store."""
        mono = time.monotonic()
        if mono - self._store_warned_at >= WARN_INTERVAL_S:
            log.warning("budget counters missing in Redis cannot be rebuilt from the store "
                        "(%s); budgets follow on_store_error", exc)
            self._store_warned_at = mono
        return self._uncounted(adm, "Redis lost its budget counters and the store, which "
                                    "holds the spend to rebuild them from, did not answer")

    def _failed(self, exc: BaseException | None) -> None:
        mono = time.monotonic()
        if exc is not None:
            self._down_until = mono + self.retry_interval_s
            self._degraded = True
        self._failures += 1
        if exc is not None and mono - self._warned_at >= WARN_INTERVAL_S:
            log.warning(
                "Redis unreachable for rate limits and budgets (%s: %s); rate limits fail "
                "open, budgets follow on_store_error; %d degraded calls since the last "
                "warning", type(exc).__name__, exc, self._failures)
            self._warned_at = mono
            self._failures = 0

    def _recovered(self) -> None:
        self._degraded = False
        self._down_until = 0.0
        log.warning("Redis reachable again: rate limits and budgets are enforced")

    # --- reconciliation and status -------------------------------------------------------

    async def _reconcile(self) -> None:
        """Start from each budget's spend in its current period as the store recorded it:
        in memory, all of it now; with Redis, the counters Redis does not hold (the others
        are built when first needed)."""
        now = self.clock()
        if self.memory is not None:
            items: list[tuple[str, str, int, int]] = []
            for rule in self.rules.budget_rules:
                pk, start, end = self._periods.current(rule.period, now)
                sums = await load_spend(self.store, rule, start, end,
                                        None if rule.match == "*" else rule.match)
                for value, usd in sums.items():
                    bkey, rkey = self.rules.budget_target(rule, value).keys(pk)
                    items.append((bkey, rkey, to_nano(usd), key_ttl(end, now)))
            self.memory.init(items)
            return
        if self._down_until and time.monotonic() < self._down_until:
            return
        try:
            for rule in self.rules.budget_rules:
                await self._rebuilder().seed_rule(rule, now)
        except _redis_errors() as exc:
            self._failed(exc)
        except SpendUnavailable as exc:
            log.warning("budgets: the stored spend could not be read at start (%s); "
                        "counters are built when first needed", exc)

    async def status(self) -> list[dict[str, Any]]:
        """One row per budget instance in its current period. With Redis, counters it
        does not hold are built from the store first, so the rows show the real spend."""
        now = self.clock()
        rows: list[dict[str, Any]] = []
        for rule in self.rules.budget_rules:
            pk, _, end = self._periods.current(rule.period, now)
            try:
                targets = await self._instances(rule, pk, now)
                if self.memory is not None:
                    use = self.memory.peek([t.keys(pk) for t in targets], now)
                else:
                    use = await self._peek_seeded(targets, pk, now)
            except _redis_errors() as exc:
                raise self._status_error(exc) from None
            except SpendUnavailable as exc:
                raise LimitsUnavailable(
                    "budget status unavailable: Redis lost budget counters and the store, "
                    f"which holds the spend to rebuild them from, did not answer ({exc})"
                ) from None
            rows += [self._row(rule, t.value, spent, res, end) for t, (spent, res) in zip(
                targets, use, strict=True)]
        return rows

    async def _instances(self, rule: BudgetRule, pk: str, now: float) -> list[BudgetTarget]:
        if rule.match != "*":
            return [self.rules.budget_target(rule, rule.match)]
        base = f"{self.prefix}budget:{rule.scope}:*:{pk}:"
        if self.memory is not None:
            keys = self.memory.instances(base)
        else:
            await self._rebuilder().seed_rule(rule, now)  # a no-op unless Redis lost them
            keys = await self._redis().instances(base)
        return [self.rules.budget_target(rule, v) for v in sorted(k[len(base):] for k in keys)]

    async def _peek_seeded(self, targets: list[BudgetTarget], pk: str,
                           now: float) -> list[tuple[int, int]]:
        bkeys = [t.keys(pk) for t in targets]
        use = await self._redis().peek(bkeys, now)
        missing = [t for t, (_, _, seeded) in zip(targets, use, strict=True) if not seeded]
        if missing:
            await self._rebuilder().seed(missing, now)
            use = await self._redis().peek(bkeys, now)
        return [(spent, res) for spent, res, _ in use]

    def _redis(self) -> RedisBackend:
        assert self.redis is not None
        return self.redis

    def _rebuilder(self) -> Rebuilder:
        assert self.rebuild is not None
        return self.rebuild

    def _status_error(self, exc: BaseException) -> LimitsUnavailable:
        return LimitsUnavailable(f"budget status unavailable: Redis is unreachable "
                                 f"({type(exc).__name__}: {exc})")

    def _row(self, rule: BudgetRule, value: str, spent: int, reserved: int,
             end: float | None) -> dict[str, Any]:
        state = ("exceeded" if spent >= rule.limit_nano else
                 "soft" if 0 <= rule.soft_nano <= spent else "ok")
        return {
            "scope": rule.scope, "name": value, "match": rule.match, "period": rule.period,
            "usd": rule.usd, "spent": from_nano(spent), "reserved": from_nano(reserved),
            "remaining": from_nano(max(rule.limit_nano - spent - reserved, 0)),
            "resets_at": end, "soft_pct": rule.soft_pct, "state": state,
            "on_store_error": rule.on_store_error, "backend": self.backend_name,
        }

