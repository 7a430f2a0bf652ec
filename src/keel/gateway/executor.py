"""Runs a plan: deployments, retries, fallbacks and timeouts, recording every attempt.

For each model of the plan's chain, in order:

1. pick a deployment (balancer; open circuits are skipped);
2. call it within the attempt timeout and what is left of the total timeout;
3. on failure, classify it: a client fault (bad request) is raised at once; other classes
   (rate_limit, server_error, timeout, connection) first try another untried deployment
   of the same model, then retry with exponential backoff and jitter (waiting at least
   what ``Retry-After`` asks, or giving up on this model if that is longer than the
   backoff cap or the time left), then fall to the next model if the class is in the
   route's ``fallback_on``;
4. a successful answer refused by the provider's content filter counts as a
   ``content_filter`` failure when that class is in ``fallback_on`` and a fallback remains.

Every attempt is appended to the trace's attempt log (model, deployment, status, error
type, latency), and the trace names the provider and upstream model that answered.
Circuit breakers count failures of the upstream's own making.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from keel.backoff import Backoff
from keel.errors import (
    KeelError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from keel.gateway.models import ModelEntry, ProviderDeployment
from keel.routing import BreakerBoard, Plan
from keel.types import JSON, Trace

T = TypeVar("T")
BREAKER_CLASSES = frozenset({"rate_limit", "server_error", "timeout", "connection"})
_rng = random.Random()


def classify(exc: KeelError) -> str | None:
    """The failure class of an upstream error; None for a client fault (never retried)."""
    if isinstance(exc, UpstreamRejected):
        return None
    if isinstance(exc, UpstreamRateLimited):
        return "rate_limit"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamUnavailable):
        return "server_error" if exc.code == "upstream_overloaded" else "connection"
    if isinstance(exc, UpstreamError):
        return "server_error"
    return None


def retry_after_s(exc: KeelError) -> float | None:
    value = exc.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(str(value)), 0.0)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def backoff_s(plan: Plan, retry_no: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    return Backoff(base=plan.retries.backoff_ms / 1000.0,
                   cap=plan.retries.max_backoff_ms / 1000.0, jitter="equal").delay(retry_no, _rng)


def is_filtered(body: JSON) -> bool:
    return any(c.get("finish_reason") == "content_filter" for c in body.get("choices") or ())


class AttemptFailed(Exception):
    """Internal: carries the error of a failed attempt out of the timing wrapper."""


async def execute(
    models: Mapping[str, ModelEntry],
    breakers: BreakerBoard,
    plan: Plan,
    trace: Trace,
    call: Callable[[ModelEntry, ProviderDeployment], Awaitable[T]],
    *,
    filtered: Callable[[T], bool] | None = None,
) -> tuple[T, ModelEntry, ProviderDeployment]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + plan.timeout_s if plan.timeout_s else None
    log: list[JSON] = trace.attempt_log if trace.attempt_log is not None else []
    trace.attempt_log = log
    last_error: KeelError | None = None
    # a filtered answer, if all else fails
    kept: tuple[T, ModelEntry, ProviderDeployment] | None = None
    for position, model_name in enumerate(plan.chain):
        entry = models[model_name]
        has_next = position < len(plan.chain) - 1
        tried: set[str] = set()
        retry_no = 0
        while True:
            dep = entry.balancer.pick(tried)
            if dep is None:
                log.append({"model": model_name, "deployment": None, "status": 503,
                            "error_type": "circuit_open", "latency_ms": 0.0})
                last_error = last_error or UpstreamUnavailable(
                    f"every deployment of model '{model_name}' has an open circuit "
                    "(recent failures); try again shortly", code="circuit_open")
                break
            timeout = plan.attempt_timeout_s
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise _total_timeout(plan, last_error)
                timeout = left if timeout is None else min(timeout, left)
            trace.attempts += 1
            trace.provider, trace.model_served = dep.provider.name, dep.upstream
            started = time.perf_counter()
            dep.in_flight += 1
            try:
                if timeout is None:
                    result = await call(entry, dep)
                else:  # in this task: wait_for would make a task per attempt
                    async with asyncio.timeout(timeout):
                        result = await call(entry, dep)
            except (TimeoutError, KeelError) as raw:
                exc = raw if isinstance(raw, KeelError) else UpstreamTimeout(
                    f"model '{model_name}' ({dep.name}) did not answer within {timeout:g}s "
                    "(route timeout)")
                dep.in_flight -= 1
                cls = classify(exc)
                _log(log, dep, exc.status, exc.error_type, started)
                if cls in BREAKER_CLASSES:
                    breakers.record(dep.breaker, ok=False)
                if cls is None:
                    raise exc from None
                last_error = exc
                tried.add(dep.name)
                if entry.balancer.untried(tried):
                    continue  # another deployment of the same model, at once
                if retry_no < plan.retries.attempts and cls != "content_filter":
                    wait = backoff_s(plan, retry_no)
                    asked = retry_after_s(exc)
                    cap = plan.retries.max_backoff_ms / 1000.0
                    if asked is not None and asked > cap:
                        wait = -1.0  # the provider wants more time than we will wait
                    elif asked is not None:
                        wait = max(wait, asked)
                    if wait >= 0 and (deadline is None or loop.time() + wait < deadline):
                        retry_no += 1
                        tried.clear()
                        await asyncio.sleep(wait)
                        continue
                if cls not in plan.fallback_on or not has_next:
                    raise _final(exc, trace) from None
                break
            except BaseException:
                dep.in_flight -= 1
                raise
            else:
                dep.in_flight -= 1
                latency = (time.perf_counter() - started) * 1000.0
                breakers.record(dep.breaker, ok=True)
                dep.observe_latency(latency)
                if filtered is not None and filtered(result) and \
                        "content_filter" in plan.fallback_on and has_next:
                    _log(log, dep, 200, "content_filter", started)
                    kept = kept or (result, entry, dep)
                    break
                _log(log, dep, 200, None, started)
                return result, entry, dep
    if kept is not None:  # the trace names the deployment whose answer is returned
        trace.provider, trace.model_served = kept[2].provider.name, kept[2].upstream
        return kept
    assert last_error is not None
    raise _final(last_error, trace)


def _log(log: list[JSON], dep: ProviderDeployment, status: int, error_type: str | None,
         started: float) -> None:
    log.append({"model": dep.model, "deployment": dep.name, "status": status,
                "error_type": error_type,
                "latency_ms": round((time.perf_counter() - started) * 1000.0, 3)})


def _final(exc: KeelError, trace: Trace) -> KeelError:
    if trace.attempts > 1 and "attempts" not in exc.message:
        exc.message = f"{exc.message} (after {trace.attempts} attempts)"
    return exc


def _total_timeout(plan: Plan, last: KeelError | None) -> KeelError:
    why = f"; last error: {last.message}" if last is not None else ""
    return UpstreamTimeout(
        f"route '{plan.route or plan.requested}' ran out of its {plan.timeout_s:g}s total "
        f"timeout{why}")
