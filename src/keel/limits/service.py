"""``Limits``: rate limits and budgets for the gateway, over the memory or Redis backend.

``admit`` checks every matching rate limit and reserves the worst-case cost in every
matching budget, all or nothing, in one step (one Lua call with Redis). ``settle`` adds
the actual cost and the tokens used, ``release`` gives the reservation back.

When Redis cannot be reached, rate limits fail open and budgets follow their
``on_store_error`` (``closed``: refuse with ``LimitsUnavailable``; ``open``: admit).
After a failure Redis is left alone for ``retry_interval_s`` so a dead Redis costs no
time per request, and the degradation is logged at most every ``WARN_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from keel.config import KeelConfig
from keel.errors import BudgetExceeded, LimitsUnavailable, RateLimited
from keel.limits.backend import Refusal, SoftCrossing
from keel.limits.memory import MemoryBackend
from keel.limits.periods import PeriodClock, format_reset
from keel.limits.redis_backend import RedisBackend
from keel.limits.rules import EMPTY_PLAN, BudgetRule, Plan, Rules, from_nano, to_nano
from keel.store import Store
from keel.store.traces import spend_by

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("keel.limits")

RESERVATION_TTL_S = 900.0
PERIOD_GRACE_S = 86_400  # budget keys outlive their period by a day
WARN_INTERVAL_S = 30.0
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
_COLUMN = {"key": "key_id", "team": "team", "feature": "feature"}


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
        if redis is None:
            self.memory = MemoryBackend(reservation_ttl_s)
        else:
            self.redis = RedisBackend(redis, reservation_ttl_s)
        self.backend_name = "memory" if redis is None else "redis"
        self._active = self.rules.active
        self._periods = PeriodClock()
        self._down_until = 0.0  # monotonic: skip Redis until then
        self._failures = 0
        self._warned_at = -math.inf
        self._degraded = False
        self._pending_init: list[tuple[str, str, int, int]] = []
        self._settle_queue: list[tuple[Admission, int, int]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._active

    async def start(self) -> None:
        if not self._active:
            return
        if self.redis is not None:
            try:
                await self.redis.load()
            except REDIS_ERRORS as exc:
                self._failed(exc)
        await self._reconcile()

    async def aclose(self) -> None:
        """Finish queued settlements (counters live in memory or in Redis; the client is
        the caller's)."""
        await self.flush()

    async def flush(self) -> None:
        """Wait until every queued settlement has been sent."""
        while self._flusher is not None:
            await self._flusher

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
            assert self.redis is not None
            if self._pending_init:
                await self._init_redis()
            if self._down_until and time.monotonic() < self._down_until:
                return self._degrade(adm, None)
            args: list[int] = []
            for t, end in zip(plan.budgets, ends, strict=True):
                args += (t.rule.limit_nano, self._key_ttl(end, now))
            try:
                refusal = await self.redis.admit(plan.limits, bkeys, args, adm.amount,
                                                 adm.rid, now)
            except REDIS_ERRORS as exc:
                return self._degrade(adm, exc)
            if self._degraded:
                self._recovered()
        if refusal is not None:
            raise self._refusal_error(adm, refusal, now)
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
            return
        now = self.clock()
        calls = []
        for adm, actual, tokens in batch:
            args: list[int] = []
            for t, end in zip(adm.plan.budgets, adm.ends, strict=True):
                args += (t.rule.soft_nano, self._key_ttl(end, now))
            calls.append((adm.plan.tpm, adm.bkeys, args, adm.amount, adm.rid, actual, tokens))
        try:
            results = await self.redis.settle_many(calls, now)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return
        for (adm, _, _), crossed in zip(batch, results, strict=True):
            if crossed:
                self._soft_warning(adm, crossed)

    def _settle_memory(self, adm: Admission, actual: int, tokens: int) -> None:
        assert self.memory is not None
        plan = adm.plan
        crossed = self.memory.settle(plan.tpm, adm.bkeys,
                                     [t.rule.soft_nano for t in plan.budgets],
                                     adm.amount, adm.rid, actual, tokens, self.clock())
        if crossed:
            self._soft_warning(adm, crossed)

    async def _settle(self, adm: Admission, actual: int, tokens: int) -> None:
        now = self.clock()
        plan = adm.plan
        if self.memory is not None:
            crossed = self.memory.settle(plan.tpm, adm.bkeys,
                                         [t.rule.soft_nano for t in plan.budgets],
                                         adm.amount, adm.rid, actual, tokens, now)
        else:
            assert self.redis is not None
            if self._down_until and time.monotonic() < self._down_until:
                self._failed(None)
                return
            args: list[int] = []
            for t, end in zip(plan.budgets, adm.ends, strict=True):
                args += (t.rule.soft_nano, self._key_ttl(end, now))
            try:
                crossed = await self.redis.settle(plan.tpm, adm.bkeys, args, adm.amount,
                                                  adm.rid, actual, tokens, now)
            except REDIS_ERRORS as exc:
                self._failed(exc)
                return
        if crossed:
            self._soft_warning(adm, crossed)

    # --- errors --------------------------------------------------------------------------

    def _refusal_error(self, adm: Admission, r: Refusal,
                       now: float) -> RateLimited | BudgetExceeded:
        if r.kind == "limit":
            t = adm.plan.limits[r.index]
            wait = max(1, math.ceil(r.free_at - now))
            unit = "requests" if t.kind == "rpm" else "tokens"
            which = f"{t.scope}:{t.match}" + (f", each {t.scope} separately"
                                              if t.match == "*" else "")
            return RateLimited(
                f"rate limit exceeded: {t.scope} '{t.value}' may use {t.limit:,} {unit} per "
                f"minute ({t.kind} limit {which}); the window frees up in {wait} s",
                headers={"retry-after": str(wait)})
        b = adm.plan.budgets[r.index]
        end = adm.ends[r.index]
        headers = {} if end is None else {"retry-after": str(max(1, math.ceil(end - now)))}
        rule = b.rule
        return BudgetExceeded(
            f"budget exceeded: the {rule.period} budget of {rule.scope} '{b.value}' is "
            f"{_usd(rule.usd)}; spent {_usd(from_nano(r.spent))}, reserved "
            f"{_usd(from_nano(r.reserved))}, and this request needs up to "
            f"{_usd(from_nano(adm.amount))}; it resets {_reset_phrase(end)}",
            headers=headers)

    def _degrade(self, adm: Admission, exc: BaseException | None) -> Admission:
        self._failed(exc)
        closed = adm.plan.fail_closed
        if closed:
            b = closed[0]
            raise LimitsUnavailable(
                f"budgets cannot be checked: Redis is unreachable; the {b.rule.period} budget "
                f"of {b.rule.scope} '{b.value}' is set to refuse requests then "
                "(on_store_error: closed); retry shortly",
                headers={"retry-after": str(max(1, math.ceil(self.retry_interval_s)))})
        adm.degraded = True
        return adm

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

    def _soft_warning(self, adm: Admission, crossed: list[SoftCrossing]) -> None:
        for k, spent in crossed:
            rule = adm.plan.budgets[k].rule
            log.warning(
                "budget soft threshold: %s %s '%s' has spent %s of %s (%.0f%%, soft_pct %s); "
                "it resets %s", rule.period, rule.scope, adm.plan.budgets[k].value,
                _usd(from_nano(spent)), _usd(rule.usd), 100.0 * from_nano(spent) / rule.usd,
                rule.soft_pct, _reset_phrase(adm.ends[k]))

    # --- reconciliation and status -------------------------------------------------------

    def _key_ttl(self, end: float | None, now: float) -> int:
        return 0 if end is None else max(1, math.ceil(end - now)) + PERIOD_GRACE_S

    async def _reconcile(self) -> None:
        """Load each budget's spend in its current period from the stored traces."""
        now = self.clock()
        items: list[tuple[str, str, int, int]] = []
        for rule in self.rules.budget_rules:
            pk, start, end = self._periods.current(rule.period, now)
            sums = await spend_by(self.store, _COLUMN[rule.scope],
                                  since=None if end is None else start,
                                  value=None if rule.match == "*" else rule.match)
            for value, usd in sums.items():
                bkey, rkey = self.rules.budget_target(rule, value).keys(pk)
                items.append((bkey, rkey, to_nano(usd), self._key_ttl(end, now)))
        if self.memory is not None:
            self.memory.init(items)
        else:
            self._pending_init = items
            await self._init_redis()

    async def _init_redis(self) -> None:
        assert self.redis is not None
        if self._down_until and time.monotonic() < self._down_until:
            return
        items, self._pending_init = self._pending_init, []
        try:
            done = await self.redis.init(items)
        except REDIS_ERRORS as exc:
            self._pending_init = items  # try again when Redis answers
            self._failed(exc)
            return
        log.info("budgets: %d of %d spend counters initialised from stored traces",
                 done, len(items))

    async def status(self) -> list[dict[str, Any]]:
        """One row per budget instance in its current period."""
        now = self.clock()
        rows: list[dict[str, Any]] = []
        for rule in self.rules.budget_rules:
            pk, _, end = self._periods.current(rule.period, now)
            if rule.match == "*":
                base = f"{self.prefix}budget:{rule.scope}:*:{pk}:"
                try:
                    keys = (self.memory.instances(base) if self.memory is not None
                            else await self._redis().instances(base))
                except REDIS_ERRORS as exc:
                    raise self._status_error(exc) from None
                values = sorted(k[len(base):] for k in keys)
            else:
                values = [rule.match]
            targets = [self.rules.budget_target(rule, v) for v in values]
            bkeys = [t.keys(pk) for t in targets]
            try:
                use = (self.memory.peek(bkeys, now) if self.memory is not None
                       else await self._redis().peek(bkeys, now))
            except REDIS_ERRORS as exc:
                raise self._status_error(exc) from None
            rows += [self._row(rule, v, spent, res, end) for v, (spent, res) in zip(
                values, use, strict=True)]
        return rows

    def _redis(self) -> RedisBackend:
        assert self.redis is not None
        return self.redis

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


def _usd(v: float) -> str:
    text = f"{v:.6f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{v:.2f}"
    return "$" + text


def _reset_phrase(end: float | None) -> str:
    return "never (a total budget)" if end is None else f"at {format_reset(end)}"
