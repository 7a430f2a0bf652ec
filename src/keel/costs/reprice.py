"""Repricing: recompute the cost of stored traces of a model from their token counts.

When a price was wrong or missing (a model added without ``price:``, a provider's price
change noticed late), ``reprice`` sets ``cost_usd`` of the model's traces in a time window
to what the current price gives, batch by batch, and adds each cost difference to the
rollups in the same transaction (never a rebuild, which would drop the totals of traces
retention has deleted), so dashboards and spend reports
agree with the traces. Each run is recorded in ``cost_events``.

What is repriced: traces whose requested or served model is the model (a served snapshot
name such as ``gpt-4o-2024-08-06`` counts as ``gpt-4o``). Cache hits stay at 0 (nothing was
paid), and failed calls that used no tokens stay at 0, as the gateway costs them.

Budgets are not changed retroactively: spend already settled against a budget stays.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from keel.audit import AuditLog, content_hash
from keel.config import KeelConfig
from keel.costs.prices import PRICES_AS_OF, resolve, snapshot_base
from keel.costs.times import day_label
from keel.errors import InvalidRequest
from keel.store import Store
from keel.store import costs as queries
from keel.store.rollups import Deltas, apply, bucket
from keel.types import Price, Usage

DAY = 86400.0
BUDGET_NOTE = "budgets are not adjusted: spend already counted against a budget stays"


@dataclass(slots=True)
class RepriceResult:
    model: str
    price_source: str
    price: Price
    since: float
    until: float | None
    dry_run: bool
    traces: int = 0  # repriced (matched and costed)
    changed: int = 0  # whose cost differs
    skipped: int = 0  # matched but not costed: cache hits, failed calls without tokens
    cost_before_usd: float = 0.0
    cost_after_usd: float = 0.0
    days: list[float] = field(default_factory=list)  # rollup days rebuilt (UTC day starts)
    event_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "price_source": self.price_source,
            "price": price_json(self.price), "since": self.since, "until": self.until,
            "dry_run": self.dry_run, "traces": self.traces, "changed": self.changed,
            "skipped": self.skipped, "cost_before_usd": self.cost_before_usd,
            "cost_after_usd": self.cost_after_usd,
            "delta_usd": self.cost_after_usd - self.cost_before_usd,
            "days": [day_label(d) for d in self.days], "event_id": self.event_id,
            "note": BUDGET_NOTE,
        }


def price_json(p: Price) -> dict[str, Any]:
    out: dict[str, Any] = {f.name: getattr(p, f.name) for f in dataclasses.fields(p)
                           if not f.name.startswith("_") and f.name != "tiers"}
    if p.tiers:
        out["tiers"] = [dataclasses.asdict(t) for t in p.tiers]
    return out


def price_for(model: str, config: KeelConfig) -> tuple[str, Price]:
    found = resolve(model, config)
    if found is None:
        raise InvalidRequest(
            f"unknown model '{model}': it has no price in the config and keel's built-in "
            f"price table (as of {PRICES_AS_OF}) does not list it; name a configured model "
            "or add one with price: to the config", param="model")
    return found


def _matches(row: dict[str, Any], model: str) -> bool:
    served = row["model_served"]
    return (row["model_requested"] == model or served == model
            or (served is not None and snapshot_base(served) == model))


def _costed(row: dict[str, Any]) -> bool:
    if row["cache_hit"]:
        return False
    return int(row["status"]) < 400 or bool(row["input_tokens"] or row["output_tokens"])


async def reprice(store: Store, config: KeelConfig, model: str, since: float,
                  until: float | None = None, *, dry_run: bool = False,
                  actor: str | None = None, batch: int = 1000,
                  audit: AuditLog | None = None) -> RepriceResult:
    """Reprice ``model``'s traces that started in ``[since, until)`` at its current price.

    Each batch of cost updates and the matching rollup changes is one transaction, so an
    interruption leaves them consistent and running it again finishes the job.
    ``dry_run`` computes the same result and writes nothing."""
    if not model:
        raise InvalidRequest("'model' is required", param="model")
    if until is not None and until <= since:
        raise InvalidRequest("'until' must be after 'since'", param="until")
    source, price = price_for(model, config)
    result = RepriceResult(model=model, price_source=source, price=price, since=since,
                           until=until, dry_run=dry_run)
    days: set[float] = set()
    after: tuple[float, str] | None = None
    while True:
        async with store.begin() as conn:
            page = await queries.usage_page(conn, model, since, until, after, batch)
            if not page:
                break
            after = (float(page[-1]["start_time"]), str(page[-1]["id"]))
            updates: list[tuple[str, float]] = []
            deltas = Deltas()
            for row in page:
                if not _matches(row, model):
                    continue
                if not _costed(row):
                    result.skipped += 1
                    continue
                old = float(row["cost_usd"] or 0.0)
                new = price.cost(Usage(
                    input_tokens=int(row["input_tokens"] or 0),
                    output_tokens=int(row["output_tokens"] or 0),
                    cached_tokens=int(row["cached_tokens"] or 0),
                    cache_write_tokens=int(row["cache_write_tokens"] or 0),
                    reasoning_tokens=int(row["reasoning_tokens"] or 0)))
                result.traces += 1
                result.cost_before_usd += old
                result.cost_after_usd += new
                days.add(bucket(float(row["start_time"]), "d"))
                if new != old:
                    result.changed += 1
                    updates.append((str(row["id"]), new))
                    deltas.add_cost(row, new - old)
            if not dry_run:
                # the trace costs and their rollups change together, in one transaction;
                # adding the difference (not rebuilding) keeps the totals of traces that
                # retention has already deleted
                await queries.set_costs(conn, updates)
                await apply(conn, store, deltas)
        if len(page) < batch:
            break
    result.days = sorted(days)
    if dry_run:
        return result
    result.event_id = await queries.add_event(
        store, at=time.time(), action="reprice", model=model, since=since, until=until,
        traces=result.traces, cost_before_usd=result.cost_before_usd,
        cost_after_usd=result.cost_after_usd, actor=actor,
        detail=orjson.dumps({
            "price_source": source, "price": price_json(price), "changed": result.changed,
            "skipped": result.skipped, "days": [day_label(d) for d in result.days],
        }).decode())
    await (audit or AuditLog.from_settings(store)).try_record(
        "costs.reprice", actor=actor, target=model, after=content_hash(price_json(price)),
        detail={"event_id": result.event_id, "since": since, "until": until,
                "price_source": source, "traces": result.traces, "changed": result.changed,
                "cost_before_usd": result.cost_before_usd,
                "cost_after_usd": result.cost_after_usd})
    return result


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    detail = out.pop("detail", None)
    out["detail"] = orjson.loads(detail) if detail else None
    return out
