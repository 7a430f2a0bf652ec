"""``keel drift check``: does a feature's recent traffic look like its traffic before?"""

from __future__ import annotations

import time

import click
import orjson
from rich.console import Console

from keel.cli.common import cli_config, config_option, with_store
from keel.cli.params import TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.monitor.drift import DriftReport
from keel.monitor.drift_windows import Windows, check_feature, report_json
from keel.store import Store
from keel.timeparse import parse_time

console = Console(soft_wrap=True)
COLUMNS = (Column("descriptor"), Column("method", drop=2), Column("statistic", "right"),
           Column("p-value", "right", drop=1), Column("threshold", "right", drop=1),
           Column("n ref/cur", "right", drop=3), Column("drift"))


def _span(text: str, name: str) -> float:
    """A duration such as 24h or 7d, in seconds."""
    now = 1_000_000_000.0
    try:
        back = now - parse_time(text, now=now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None
    if back <= 0:
        raise click.BadParameter(f"{text!r} is not a duration such as 24h or 7d",
                                 param_hint=name)
    return back


def _verdict(drifted: bool | None) -> str:
    return "not enough data" if drifted is None else "DRIFT" if drifted else "-"


@click.group("drift")
def drift_group() -> None:
    """Drift: whether a feature's traffic changed, on its texts and their descriptors."""


@drift_group.command("check")
@click.option("--feature", required=True, help="The feature whose traffic is compared.")
@click.option("--current", "current", default="24h", show_default=True,
              help="The current window: this long back from now.")
@click.option("--reference", "reference", default="7d", show_default=True,
              help="The reference window: this long, just before the current one.")
@click.option("--sample", type=click.IntRange(30, 5000), default=1000, show_default=True,
              help="Traces sampled from each window (bounded time and memory).")
@click.option("--at", "at", type=TIME, default=None,
              help="Compare as of this time (UNIX seconds, an ISO time, or a duration back "
                   "from now) [default: now].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@wide_option
@config_option
def check(feature: str, current: str, reference: str, sample: int, at: float | None,
          seed: int, as_json: bool, wide: bool, config_path: str | None) -> None:
    """Compare a feature's current window with the reference window before it: per
    descriptor (request and answer length, tokens, latency, language, refusals, tool calls,
    guardrail hits, out-of-vocabulary share) with the test suited to the sample size, and a
    classifier trained to tell the windows' texts apart (ROC AUC, with the terms typical of
    each window). Exits 1 when anything drifted."""
    cli_config(config_path)
    now = at if at is not None else time.time()
    cur_s, ref_s = _span(current, "--current"), _span(reference, "--reference")

    async def go(store: Store) -> tuple[DriftReport, Windows]:
        return await check_feature(store, feature, now, current_s=cur_s, reference_s=ref_s,
                                   sample=sample, seed=seed)

    report, windows = with_store(go)
    if as_json:
        click.echo(orjson.dumps(report_json(report, windows),
                                option=orjson.OPT_INDENT_2).decode())
    else:
        rows = [[d.name, d.method, "-" if d.statistic is None else f"{d.statistic:.4g}",
                 "-" if d.p_value is None else f"{d.p_value:.3g}",
                 f"{'p < ' if d.p_value is not None else ''}{d.threshold:.3g}",
                 f"{d.n_reference}/{d.n_current}", _verdict(d.drifted)]
                for d in report.descriptors]
        c = report.classifier
        if c is not None:
            rows.append(["texts", c.method, "-" if c.auc is None else f"AUC {c.auc:.3f}",
                         "-" if c.p_value is None else f"{c.p_value:.3g}",
                         "-" if c.threshold is None else f"AUC > {c.threshold:.3f}",
                         f"{c.n_reference}/{c.n_current}", _verdict(c.drifted)])
        print_table(console, list(COLUMNS), rows, wide=wide)
        if c is not None and c.drifted:
            click.echo("typical of the current window: "
                       + ", ".join(t.text for t in c.current_terms[:10]))
            click.echo("typical of the reference window: "
                       + ", ".join(t.text for t in c.reference_terms[:10]))
            click.echo("examples: " + ", ".join(c.current_examples[:5]))
        for note in report.notes:
            click.echo(f"note: {note}")
    if report.drifted:
        raise SystemExit(1)
