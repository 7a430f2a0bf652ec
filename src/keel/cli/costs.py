"""``keel costs``: prices in effect, repricing stored traces, spend reports, cost events."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from typing import Any

import click
import orjson
from rich.console import Console
from rich.text import Text

from keel.cli.common import cli_config, listed, with_store
from keel.cli.params import TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.config import KeelConfig
from keel.errors import KeelError
from keel.store import Store

console = Console(soft_wrap=True)

_CONFIG = click.option("--config", "config_path", envvar="KEEL_CONFIG", default=None,
                       help="YAML config file [default: keel.yaml if present].")


def _config(config_path: str | None) -> KeelConfig:
    return cli_config(config_path)


def _short(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _fail(exc: KeelError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(2)


@click.group("costs")
def costs() -> None:
    """Prices, repricing of stored traces, and spend reports (from the rollups)."""


@costs.command("prices")
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
def prices_cmd(config_path: str | None, as_json: bool, wide: bool) -> None:
    """The price each configured model is costed at, and where it comes from."""
    from keel.costs.prices import PRICES_AS_OF, model_price
    from keel.costs.reprice import price_json

    config = _config(config_path)
    rows: list[dict[str, Any]] = []
    for m in config.models:
        found = model_price(m)
        rows.append({"model": m.name, "upstream": m.upstream_name,
                     "source": found[0] if found else None,
                     "price": price_json(found[1]) if found else None})
    if as_json:
        click.echo(orjson.dumps({"built_in_as_of": PRICES_AS_OF, "models": rows}).decode())
        return
    out: list[list[str | Text]] = []
    for r in rows:
        p = r["price"]
        if p is None:
            out.append([r["model"], r["upstream"], Text("none: costs 0", style="red"), "-",
                        "-", "-", ""])
            continue
        extra = []
        if p["cache_write_per_mtok"] is not None:
            extra.append(f"cache write {p['cache_write_per_mtok']:g}")
        if p["reasoning_per_mtok"] is not None:
            extra.append(f"reasoning {p['reasoning_per_mtok']:g}")
        if p["per_request_usd"]:
            extra.append(f"+${p['per_request_usd']:g}/request")
        for t in p.get("tiers", ()):
            rates = "/".join("=" if t[k] is None else f"{t[k]:g}"
                             for k in ("input_per_mtok", "output_per_mtok"))
            extra.append(f">{t['above_input_tokens']:,} in: {rates}")
        cached = p["cached_input_per_mtok"]
        out.append([r["model"], r["upstream"], r["source"], f"{p['input_per_mtok']:g}",
                    "-" if cached is None else f"{cached:g}", f"{p['output_per_mtok']:g}",
                    "; ".join(extra)])
    print_table(console, PRICE_COLUMNS, out, wide=wide)
    console.print(f"built-in prices as of {PRICES_AS_OF}; a price: in the config overrides them")


@costs.command("reprice")
@click.option("--model", required=True, help="Model (keel or upstream name) to reprice.")
@click.option("--since", type=TIME, required=True,
              help="From this time on: 2026-11-01, an ISO time, UNIX seconds, or 7d.")
@click.option("--until", type=TIME, default=None,
              help="Before this time [default: now and later].")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--actor", default=None, help="Who reprices, for the event [default: $USER].")
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reprice_cmd(model: str, since: float, until: float | None, dry_run: bool, actor: str | None,
                config_path: str | None, as_json: bool) -> None:
    """Recompute the cost of MODEL's stored traces from their token counts at the current
    price (the config's, else the built-in table's), then rebuild the affected days'
    rollups and record a cost event. Budgets are not adjusted retroactively."""
    from keel.costs.reprice import RepriceResult, price_for, reprice

    config = _config(config_path)
    try:
        price_for(model, config)  # an unknown model fails before the database is opened
    except KeelError as exc:
        _fail(exc)

    async def go(store: Store) -> RepriceResult:
        return await reprice(store, config, model, since, until, dry_run=dry_run,
                             actor=actor or os.environ.get("USER") or "cli")

    result = with_store(go)
    if as_json:
        click.echo(orjson.dumps(result.to_json()).decode())
        return
    r = result
    window = f"{_short(r.since)} .. {_short(r.until) if r.until is not None else 'now'}"
    verb = "would change" if dry_run else "changed"
    console.print(f"model [bold]{r.model}[/] ({r.price_source} price), traces {window}")
    console.print(f"  {r.traces} traces repriced, {r.changed} {verb}, {r.skipped} not costed "
                  "(cache hits, failed calls without tokens)")
    delta = r.cost_after_usd - r.cost_before_usd
    console.print(f"  cost ${r.cost_before_usd:.6f} -> ${r.cost_after_usd:.6f} "
                  f"({'+' if delta >= 0 else '-'}${abs(delta):.6f})")
    days = len(r.days)
    if dry_run:
        console.print(f"  dry run: nothing written; {days} day(s) of rollups would be rebuilt")
    else:
        console.print(f"  rollups rebuilt for {days} day(s); recorded as cost event "
                      f"#{r.event_id}")
    console.print("  budgets are not adjusted: spend already counted against them stays")


@costs.command("spend")
@click.option("--by", "by", default="feature", show_default=True,
              help="Group by any of feature,team,model,prompt,day (comma-separated).")
@click.option("--since", type=TIME, default="7d", show_default=True,
              help="From: 2026-11-01, an ISO time, UNIX seconds, or a duration ago (12h, 1w).")
@click.option("--until", type=TIME, default=None, help="To [default: now].")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
def spend_cmd(by: str, since: float, until: float | None, as_csv: bool, as_json: bool,
              wide: bool) -> None:
    """Spend per group from the rollups (hourly rows under two days, daily beyond)."""
    from keel.costs.spend import SpendReport, parse_group_by, spend

    since_ts, until_ts = since, time.time() if until is None else until
    try:
        group_by = parse_group_by(by)
    except KeelError as exc:
        raise click.BadParameter(exc.message, param_hint="--by") from None
    if until_ts <= since_ts:
        raise click.BadParameter("must be after --since", param_hint="--until")

    async def go(store: Store) -> SpendReport:
        return await spend(store, since_ts, until_ts, group_by)

    report = with_store(go)
    if as_csv:
        click.echo(report.to_csv(), nl=False)
        return
    if as_json:
        click.echo(orjson.dumps(report.to_json()).decode())
        return
    out: list[list[str | Text]] = []

    def add(labels: list[str], row: dict[str, Any], style: str = "") -> None:
        out.append([Text(v, style=style) for v in (
            *labels, str(row["requests"]), str(row["errors"]), str(row["input_tokens"]),
            str(row["output_tokens"]), f"{row['cost_usd']:.6f}",
            f"{row['cost_saved_usd']:.6f}")])

    for row in report.rows:
        add([str(row[c]) or "-" for c in report.group_by], row)
    if report.group_by:
        add(["total", *[""] * (len(report.group_by) - 1)], report.total, style="bold")
    else:
        add([], report.total)
    print_table(console, [*(Column(g) for g in report.group_by), *SPEND_COLUMNS], out,
                wide=wide)
    console.print(f"{_short(report.since)} .. {_short(report.until)} UTC "
                  f"({'hourly' if report.granularity == 'h' else 'daily'} rollups)")


@costs.command("events")
@click.option("--model", default=None, help="Only this model's events.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def events_cmd(model: str | None, limit: int, as_json: bool, wide: bool) -> None:
    """Repricing events, newest first."""
    from keel.costs.reprice import event_json
    from keel.store.costs import list_events

    async def go(store: Store) -> list[dict[str, Any]]:
        return await list_events(store, model=model, limit=limit)

    rows = [event_json(r) for r in with_store(go)]
    if listed(rows, as_json, "no cost events yet (keel costs reprice records one)"):
        return
    out = []
    for r in rows:
        until = _short(r["until"]) if r["until"] is not None else "now"
        out.append([str(r["id"]), _short(r["at"]), r["action"], r["model"] or "-",
                    f"{_short(r['since'])} .. {until}", str(r["traces"]),
                    f"{r['cost_before_usd']:.6f}", f"{r['cost_after_usd']:.6f}",
                    r["actor"] or "-"])
    print_table(console, EVENT_COLUMNS, out, wide=wide)


# on a narrow terminal the highest ``drop`` goes first
PRICE_COLUMNS = (Column("model"), Column("upstream", drop=2), Column("source", drop=1),
                 Column("in $/M", "right"), Column("cached $/M", "right", drop=3),
                 Column("out $/M", "right"), Column("extra", drop=4, flex=True))
SPEND_COLUMNS = (Column("requests", "right"), Column("errors", "right", drop=2),
                 Column("tokens in", "right", drop=3), Column("tokens out", "right", drop=3),
                 Column("cost $", "right"), Column("saved $", "right", drop=1))
EVENT_COLUMNS = (Column("#", "right"), Column("at (UTC)", drop=2, whole=True),
                 Column("action"), Column("model"), Column("window", drop=4),
                 Column("traces", "right", drop=5), Column("before $", "right"),
                 Column("after $", "right"), Column("actor", drop=3))
