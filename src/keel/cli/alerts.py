"""``keel alerts check``: every alert rule (the config's and the built-in early warnings)
evaluated now, over the store's rollups."""

from __future__ import annotations

import time
from typing import Any

import click
import orjson
from rich.console import Console

from keel.cli.common import cli_config, config_option, with_store
from keel.cli.params import TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.monitor.alerts import Evaluation, State, evaluate, rules_for
from keel.store import Store

console = Console(soft_wrap=True)
COLUMNS = (Column("rule"), Column("series", drop=2), Column("state"),
           Column("value", "right", drop=1), Column("reason", flex=True))
# shown first: what needs someone's attention
ORDER = {State.ALERT: 0, State.WARNING: 1, State.NO_DATA: 2}


@click.group("alerts")
def alerts_group() -> None:
    """Alert rules over keel's measures: the config's `alerts:` rules and the built-in early
    warnings (rework surge at stable volume, unit cost creep without a quality gain,
    rising escalations, a team's quality diverging from its feature's)."""


def _value(e: Evaluation) -> str:
    return "-" if e.value is None else f"{e.value:.4g}"


@alerts_group.command("check")
@click.option("--at", "at", type=TIME, default=None,
              help="Evaluate as of this time (UNIX seconds, an ISO time, or a duration back "
                   "from now such as 2h) [default: now].")
@click.option("--rule", "only", multiple=True, help="Only this rule (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print every evaluation as JSON.")
@wide_option
@config_option
def check(at: float | None, only: tuple[str, ...], as_json: bool, wide: bool,
          config_path: str | None) -> None:
    """Evaluate every rule now (or --at a past time) and print each series' state: ok,
    warning, alert or no_data, with the value and the reason in words. Exits 1 when a
    rule is in alert, so a script or a cron job can act on it."""
    config = cli_config(config_path)
    rules = rules_for(config.alerts)
    if only:
        known = {r.name for r in rules}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise click.UsageError(f"unknown rule {', '.join(unknown)}; rules: "
                                   f"{', '.join(sorted(known))}")
        rules = [r for r in rules if r.name in only]
    units = {f.name: f.value_unit for f in config.features if f.value_unit}
    now = at if at is not None else time.time()

    async def go(store: Store) -> list[Evaluation]:
        return await evaluate(store, rules, now, value_units=units)

    found = sorted(with_store(go), key=lambda e: (ORDER.get(e.state, 3), e.rule, e.key))
    if as_json:
        data: list[dict[str, Any]] = [e.as_dict() for e in found]
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        rows = [[e.rule, ", ".join(f"{k}={v}" for k, v in e.series.items()) or "-",
                 e.state.value, _value(e), e.reason] for e in found]
        if not rules:
            click.echo("no alert rules: the config has alerts: {builtins: false} and no rules")
        else:
            print_table(console, list(COLUMNS), rows, wide=wide)
    if any(e.state is State.ALERT for e in found):
        raise SystemExit(1)
