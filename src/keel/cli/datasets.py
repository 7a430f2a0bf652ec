"""``keel datasets``: import, list, show, and turn stored traces into cases."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.table import Table

from keel.cli.common import with_store
from keel.cli.params import STATUS, TIME
from keel.evals.datasets import Datasets

T = TypeVar("T")
console = Console(soft_wrap=True)


def _with_datasets(fn: Callable[[Datasets], Awaitable[T]]) -> T:
    return with_store(lambda store: fn(Datasets(store)))


@click.group("datasets")
def datasets() -> None:
    """Eval datasets: immutable numbered versions of cases (name@version)."""


@datasets.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop",
              show_default=True, help="A bad line stops the import, or is skipped.")
@click.option("-m", "--message", default=None)
def import_cmd(name: str, file: Path, on_error: str, message: str | None) -> None:
    """Add FILE (.jsonl, .csv or .yaml) as a new version of dataset NAME."""

    async def go(ds: Datasets) -> Any:
        return await ds.import_file(name, file, on_error=on_error, message=message)

    version, report = _with_datasets(go)
    console.print(f"imported {name}@{version}: {report.cases} cases")
    for line, why in report.skipped:
        click.echo(f"skipped line {line}: {why}", err=True)


@datasets.command("add-traces")
@click.argument("name")
@click.option("--feature", default=None)
@click.option("--model", default=None)
@click.option("--status", type=STATUS, default=None, help="ok, error, or an HTTP status code.")
@click.option("--since", type=TIME, default=None,
              help="Only traces from this time: UNIX seconds, an ISO date or time, or a "
                   "duration back from now (30m, 2h, 7d, 1w).")
@click.option("--until", type=TIME, default=None, help="Only traces before this time.")
@click.option("--since-hours", type=click.FloatRange(0, 1e6, min_open=True), default=None,
              hidden=True, help="Deprecated: --since 24h.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("-m", "--message", default=None)
def add_traces(name: str, feature: str | None, model: str | None, status: str | None,
               since: float | None, until: float | None, since_hours: float | None,
               limit: int, message: str | None) -> None:
    """New version of NAME = its latest cases + cases made from matching stored traces."""
    from keel.store.traces import TraceFilter

    if since_hours is not None:
        if since is not None:
            raise click.UsageError("give --since (--since-hours is its old spelling), not both")
        since = time.time() - since_hours * 3600
    flt = TraceFilter(feature=feature, model=model, status=status, since=since, until=until)

    async def go(ds: Datasets) -> tuple[int, int]:
        return await ds.add_traces(name, flt, limit=limit, message=message)

    version, added = _with_datasets(go)
    console.print(f"{name}@{version}: added {added} cases from traces")


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(as_json: bool) -> None:
    """Every dataset version."""
    from keel.store import datasets as q

    async def go(ds: Datasets) -> list[dict[str, Any]]:
        return await q.list_versions(ds.store)

    rows = _with_datasets(go)
    if as_json:
        click.echo(orjson.dumps(rows).decode())
        return
    table = Table("dataset", "cases", "source", "message")
    for r in rows:
        table.add_row(f"{r['name']}@{r['version']}", str(r["cases"]), r["source"] or "-",
                      r["message"] or "")
    console.print(table)


@datasets.command("show")
@click.argument("ref")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True)
def show(ref: str, limit: int) -> None:
    """The first cases of NAME or NAME@VERSION, one JSON object per line."""

    async def go(ds: Datasets) -> list[str]:
        row = await ds.resolve(ref)
        out = []
        async for _, case in ds.cases(row["name"], row["version"]):
            out.append(case.to_json())
            if len(out) >= limit:
                break
        return out

    for line in _with_datasets(go):
        click.echo(line)
