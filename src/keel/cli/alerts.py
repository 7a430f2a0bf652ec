"""``keel alerts check``: every alert rule (the config's and the built-in early warnings)
evaluated now, over the store's rollups."""

from __future__ import annotations

import time
from typing import Any

import click
import orjson
from rich.console import Console

from keel.cli.common import cli_config, cli_settings, config_option, listed, with_store
from keel.cli.params import TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.errors import KeelError
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
    rising escalations, a team's quality diverging from its feature's). `check` evaluates
    now; `test` evaluates across a past period; `list` shows what keel serve's alert loop
    stored; `silence`, `silences` and `unsilence` manage silences."""


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


def _series(series: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in series.items()) or "-"


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


LIST_COLUMNS = (Column("rule"), Column("series", drop=2), Column("state"),
                Column("phase", drop=3), Column("since (UTC)", drop=4),
                Column("value", "right", drop=1), Column("reason", flex=True))


@alerts_group.command("list")
@click.option("--firing", is_flag=True, help="Only the series that are firing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def list_cmd(firing: bool, as_json: bool, wide: bool) -> None:
    """The state `keel serve` stored at its last evaluation: every rule series with its
    state (ok, warning, alert, no_data, silenced), phase (inactive, pending, firing), value
    and reason, firing first."""
    from keel.monitor.alerts.manager import current

    rows = with_store(current)
    if firing:
        rows = [r for r in rows if r["phase"] == "firing"]
    if listed(rows, as_json, "no alert series: keel serve has not evaluated any rule yet "
                             "(or none is firing)" if firing else
              "no alert series: keel serve has not evaluated any rule yet"):
        return
    print_table(console, list(LIST_COLUMNS), [
        [r["rule"], _series(r["series"]), r["state"], r["phase"], _when(r["since"]),
         "-" if r["value"] is None else f"{r['value']:.4g}",
         r["reason"] + (f" (silenced by {', '.join(r['silenced_by'])})" if r["silenced_by"]
                        else f" (inhibited by {r['inhibited_by']})" if r["inhibited_by"]
                        else "")] for r in rows], wide=wide)


@alerts_group.command("test")
@click.option("--rule", "only", multiple=True, required=True,
              help="The rule to test (repeatable); a rule of the config or a built-in.")
@click.option("--since", type=TIME, required=True,
              help="Start of the period (a duration back such as 7d, or a time).")
@click.option("--until", type=TIME, default=None, help="End of the period [default: now].")
@click.option("--step", "step", default="1h", show_default=True,
              help="How often to evaluate across the period: 5m, 1h, 1d.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@config_option
def test_cmd(only: tuple[str, ...], since: float, until: float | None, step: str,
             as_json: bool, config_path: str | None) -> None:
    """Test a rule against history: evaluate it at every --step of the period, as keel serve
    would have (for: and keep_firing_for: counted), and print when each series would have
    fired and resolved, and how much of the period it spent breaching and firing."""
    from keel.config.alerts import duration_seconds
    from keel.monitor.alerts.backtest import backtest

    config = cli_config(config_path)
    rules = rules_for(config.alerts)
    known = {r.name for r in rules}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise click.UsageError(f"unknown rule {', '.join(unknown)}; rules: "
                               f"{', '.join(sorted(known))}")
    step_s = duration_seconds(step)
    if step_s is None:
        raise click.BadParameter("a whole number and a unit: 5m, 1h, 1d", param_hint="--step")
    units = {f.name: f.value_unit for f in config.features if f.value_unit}
    end = until if until is not None else time.time()

    async def go(store: Store) -> Any:
        return await backtest(store, [r for r in rules if r.name in only], since, end,
                              step_s=step_s, value_units=units)

    result = with_store(go)
    if as_json:
        click.echo(orjson.dumps({
            "since": result.since, "until": result.until, "step_s": result.step_s,
            "steps": result.steps, "series": [{
                "key": h.key, "rule": h.rule, "series": h.series,
                "evaluations": h.evaluations, "breaching": h.breaching, "firing": h.firing,
                "fired": h.fired, "transitions": [
                    {"kind": t.kind, "at": t.at, "severity": t.severity.value}
                    for t in h.transitions]} for h in result.series]},
            option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{result.steps} evaluations, every {step}, {_when(result.since)} to "
               f"{_when(result.until)} UTC")
    if not result.series:
        click.echo("no series: the rules found no traffic in their scope")
    for h in result.series:
        share = h.firing / h.evaluations if h.evaluations else 0.0
        click.echo(f"{h.rule} {_series(h.series)}: fired {h.fired} time(s); breaching "
                   f"{h.breaching} of {h.evaluations} evaluations, firing {share:.0%}")
        for t in h.transitions:
            if t.kind != "pending":
                click.echo(f"  {_when(t.at)}  {t.kind}"
                           + ("" if t.kind == "resolved" else f" ({t.severity.value})"))


@alerts_group.command("silence")
@click.option("--match", "matches", multiple=True, required=True, metavar="LABEL=VALUE",
              help="A label the alerts must have: rule=, feature=, team=, model= "
                   "(repeatable; all must hold).")
@click.option("--reason", required=True, help="Why these alerts may stay quiet (recorded).")
@click.option("--for", "duration", required=True, help="How long: 30m, 2h, 1d.")
def silence_cmd(matches: tuple[str, ...], reason: str, duration: str) -> None:
    """Silence the alerts matching every --match for a while: they are still evaluated and
    shown, and not notified. Recorded in the audit log; prints the silence's id."""
    from keel.audit import AuditLog, local_user
    from keel.config.alerts import duration_seconds
    from keel.monitor.alerts import silences

    matchers: dict[str, str] = {}
    for m in matches:
        name, eq, value = m.partition("=")
        if not eq:
            raise click.BadParameter(f"'{m}' is not LABEL=VALUE", param_hint="--match")
        matchers[name.strip()] = value.strip()
    seconds = duration_seconds(duration)
    if seconds is None:
        raise click.BadParameter("a whole number and a unit: 30m, 2h, 1d", param_hint="--for")
    now = time.time()
    try:
        row = silences.new_silence(matchers, creator=local_user(), reason=reason,
                                   starts_at=now, ends_at=now + seconds, now=now)
    except KeelError as exc:
        raise click.UsageError(exc.message) from None

    async def go(store: Store) -> dict[str, Any]:
        return await silences.create(store, AuditLog.from_settings(store, cli_settings()), row)

    with_store(go)
    click.echo(f"{row['id']}: silenced {_series(row['matchers'])} until "
               f"{_when(row['ends_at'])} UTC")


@alerts_group.command("silences")
@click.option("--all", "everything", is_flag=True, help="Ended and lifted ones too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def silences_cmd(everything: bool, as_json: bool) -> None:
    """The silences in force (--all: every silence), latest end first."""
    from keel.store.alerts import list_silences

    now = time.time()

    async def go(store: Store) -> list[dict[str, Any]]:
        return await list_silences(store, active_at=None if everything else now)

    rows = with_store(go)
    if listed(rows, as_json, "no silence is in force" if not everything else "no silence"):
        return
    print_table(console, [Column("id"), Column("matches"), Column("ends (UTC)"),
                          Column("by", drop=1), Column("reason", flex=True)],
                [[r["id"], _series(r["matchers"]),
                  _when(r["ends_at"]) + (" (lifted)" if r["lifted_at"] else ""),
                  r["creator"], r["reason"]] for r in rows])


@alerts_group.command("unsilence")
@click.argument("silence_id")
def unsilence_cmd(silence_id: str) -> None:
    """Lift SILENCE_ID now: its alerts are notified again."""
    from keel.audit import AuditLog, local_user
    from keel.monitor.alerts import silences

    async def go(store: Store) -> dict[str, Any]:
        return await silences.lift(store, AuditLog.from_settings(store, cli_settings()),
                                   silence_id, by=local_user(), now=time.time())

    with_store(go)
    click.echo(f"{silence_id}: lifted")
