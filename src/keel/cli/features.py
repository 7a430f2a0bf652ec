"""``keel features``: per-feature kill switches (stop, start, list)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from keel.cli.common import listed, with_store
from keel.cli.tables import Column, print_table, wide_option
from keel.store import Store

console = Console(soft_wrap=True)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group("features")
def features() -> None:
    """Per-feature kill switches: a stopped feature's requests are refused (503
    feature_stopped) until it is started again. Running servers pick a change up within
    KEEL_REFRESH_INTERVAL_S; every stop and start is in the audit log."""


@features.command("stop")
@click.argument("feature")
@click.option("--reason", required=True, help="Why (shown to callers and recorded).")
def stop_cmd(feature: str, reason: str) -> None:
    """Stop FEATURE: refuse its requests until `keel features start FEATURE`."""
    from keel.audit import local_user
    from keel.switches import FeatureSwitches

    async def go(store: Store) -> dict[str, Any]:
        return await FeatureSwitches(store).stop_feature(feature, reason=reason,
                                                         actor=local_user())

    row = with_store(go)
    console.print(f"stopped feature {row['feature']}: {row['reason']}", markup=False,
                  highlight=False)


@features.command("start")
@click.argument("feature")
def start_cmd(feature: str) -> None:
    """Start FEATURE again (serve its requests)."""
    from keel.audit import local_user
    from keel.switches import FeatureSwitches

    async def go(store: Store) -> dict[str, Any]:
        return await FeatureSwitches(store).start_feature(feature, actor=local_user())

    row = with_store(go)
    console.print(f"started feature {row['feature']}")


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def list_cmd(as_json: bool, wide: bool) -> None:
    """Every feature ever stopped: its state, since when, by whom and why."""
    from keel.switches import FeatureSwitches

    async def go(store: Store) -> list[dict[str, Any]]:
        return await FeatureSwitches(store).rows()

    rows = with_store(go)
    if listed(rows, as_json, "no feature has been stopped; every feature is running"):
        return
    print_table(console, LIST_COLUMNS, [
        [r["feature"], Text(r["state"], style="red" if r["state"] == "stopped" else "green"),
         _when(r["since"]), r["by"] or "-", r["reason"] or "-"] for r in rows], wide=wide)


LIST_COLUMNS = (Column("feature"), Column("state"), Column("since (UTC)", drop=2, whole=True),
                Column("by", drop=1), Column("reason", flex=True))
