"""``keel stats`` (derived measures over a window) and ``keel rollups rebuild``."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click
import orjson
from rich.console import Console

from keel.cli.common import cli_config, config_option, with_store
from keel.cli.params import TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.monitor.measures import Filters, summary
from keel.store import Store
from keel.store import rollups as r

console = Console(soft_wrap=True)


# on a narrow terminal the highest ``drop`` goes first; requests, availability, p95
# latency and cost always stay
STATS_COLUMNS = (
    Column("requests", "right"), Column("avail.", "right"), Column("p50 ms", "right", drop=4),
    Column("p95 ms", "right"), Column("cost $", "right"), Column("$/req", "right", drop=1),
    Column("value", "right", drop=7), Column("$/value", "right", drop=6),
    Column("accept", "right", drop=5), Column("rework", "right", drop=5),
    Column("escal.", "right", drop=6), Column("crit/1k", "right", drop=2),
    Column("unit cost trend", drop=3, flex=True),
)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _num(v: float | None, fmt: str = ".0f") -> str:
    return "-" if v is None else format(v, fmt)


@click.command("stats")
@click.option("--since", type=TIME, default="24h", show_default=True,
              help="Start: UNIX seconds, an ISO date or time, or a duration back from now "
                   "(30m, 2h, 7d, 1w).")
@click.option("--until", type=TIME, default=None, help="End [default: now].")
@click.option("--feature", default=None)
@click.option("--team", default=None)
@click.option("--model", default=None)
@click.option("--prompt", default=None, help="name@version")
@click.option("--by", "group_by", default="feature", show_default=True,
              help="Group by any of feature,team,model,prompt (comma-separated), or 'none'.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the API returns.")
@wide_option
@config_option
def stats(since: float, until: float | None, feature: str | None, team: str | None,
          model: str | None, prompt: str | None, group_by: str, as_json: bool,
          wide: bool, config_path: str | None) -> None:
    """Quality, cost and value measures per group over a window (from the rollups):
    volume, availability, latency, cost per request and per value unit, acceptance, rework,
    escalation, critical errors per 1k, and whether unit cost falls as volume grows."""
    config = cli_config(config_path)
    units = {f.name: f.value_unit for f in config.features if f.value_unit}
    groups = () if group_by == "none" else tuple(g.strip() for g in group_by.split(",") if g)

    async def go(store: Store) -> dict[str, Any]:
        return await summary(store, since, until or time.time(),
                             filters=Filters(feature, team, model, prompt), group_by=groups,
                             value_units=units)

    data = with_store(go)
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    granularity = {"m": "minute", "h": "hour", "d": "day"}[data["granularity"]]
    rows = []
    for g in data["groups"]:
        trend = g["trend"]
        verdict = trend["unit_cost_falling_as_volume_grows"]
        trend_text = "-" if trend["unit_cost_change"] is None else (
            f"{trend['unit_cost_change']:+.0%} per {trend['unit']}, volume "
            f"{_pct(trend['volume_change'])}" + (" ✓" if verdict else ""))
        rows.append([*(str(g[k]) or "-" for k in groups), str(g["requests"]),
                     _pct(g["availability"]), _num(g["latency_ms"]["p50"]),
                     _num(g["latency_ms"]["p95"]), f"{g['cost_usd']:.4f}",
                     _num(g["cost_per_request_usd"], ".5f"),
                     _num(g.get("value_units"), ".0f"),
                     _num(g.get("cost_per_value_unit_usd"), ".4f"),
                     _pct(g["acceptance_rate"]), _pct(g["rework_rate"]),
                     _pct(g["escalation_rate"]), _num(g["critical_errors_per_1k"], ".2f"),
                     trend_text])
    print_table(console, [*(Column(g) for g in groups), *STATS_COLUMNS], rows, wide=wide,
                title=f"{_when(data['from'])} .. {_when(data['to'])} UTC ({granularity} "
                      "buckets)")


@click.group("rollups")
def rollups_group() -> None:
    """The rollup tables behind stats and dashboards."""


@rollups_group.command("rebuild")
@click.option("--since", type=TIME, required=True,
              help="From this time (rounded down to a UTC day): ISO date or time, UNIX "
                   "seconds, or a duration back from now (30d).")
@click.option("--until", type=TIME, default=None, help="Up to this time [default: all].")
def rebuild_cmd(since: float, until: float | None) -> None:
    """Recompute the rollups of whole days from raw traces, feedback and outcomes (one
    transaction; readers see the old rollups until it commits)."""
    counts = with_store(lambda store: r.rebuild(store, since, until))
    console.print(f"rolled up {counts['traces']} traces, {counts['feedback']} feedback "
                  f"items and {counts['outcomes']} outcomes")


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True)
@config_option
def purge_cmd(dry_run: bool, as_json: bool, config_path: str | None) -> None:
    """Apply each feature's retention (features[].retention in the config): delete message
    content older than content_days and trace rows older than rows_days. Rollups stay.
    `keel serve` also does this every hour."""
    from keel.audit import AuditLog, local_user
    from keel.store.retention import PurgeReport, purge, rules_from

    config = cli_config(config_path)
    rules = rules_from(config.features)
    if not rules:
        console.print("no feature has a retention rule (features[].retention); nothing to do")
        return
    async def go(store: Store) -> PurgeReport:
        report = await purge(store, rules, dry_run=dry_run)
        await AuditLog.from_settings(store).record_purge(report, actor=local_user())
        return report

    report = with_store(go)
    if as_json:
        click.echo(orjson.dumps({"dry_run": report.dry_run, "at": report.at,
                                 "features": report.features, "total": report.total}))
        return
    verb = "would delete" if dry_run else "deleted"
    for feature, e in report.features.items():
        console.print(f"{feature}: {verb} {e['traces']} trace rows"
                      + (f" (before {_when(e['rows_before'])})" if e["rows_before"] else "")
                      + f" and the content of {e['payloads']} traces"
                      + (f" (before {_when(e['content_before'])})" if e["content_before"]
                         else ""))
