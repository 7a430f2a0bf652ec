"""``keel datasets``: import, list, show, and turn stored traces into cases."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console

from keel.cli.common import listed, with_store
from keel.cli.params import STATUS, TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.evals.datasets import Case, Datasets

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
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def list_cmd(as_json: bool, wide: bool) -> None:
    """Every dataset version."""
    from keel.store import datasets as q

    async def go(ds: Datasets) -> list[dict[str, Any]]:
        return await q.list_versions(ds.store)

    rows = _with_datasets(go)
    if listed(rows, as_json, "no datasets yet (keel datasets import NAME FILE adds one)"):
        return
    print_table(console, LIST_COLUMNS, [
        [f"{r['name']}@{r['version']}", str(r["cases"]), r["source"] or "-",
         r["message"] or "-"] for r in rows], wide=wide)


LIST_COLUMNS = (Column("dataset"), Column("cases", "right"), Column("source", drop=1),
                Column("message", flex=True))


@datasets.command("show")
@click.argument("ref")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True,
              help="Print the cases as JSON lines, as `keel datasets import` reads them.")
@wide_option
def show(ref: str, limit: int, as_json: bool, wide: bool) -> None:
    """The first cases of NAME or NAME@VERSION."""

    async def go(ds: Datasets) -> tuple[str, list[Case]]:
        row = await ds.resolve(ref)
        out = []
        async for _, case in ds.cases(row["name"], row["version"]):
            out.append(case)
            if len(out) >= limit:
                break
        return f"{row['name']}@{row['version']}", out

    name, cases = _with_datasets(go)
    if as_json:
        for case in cases:
            click.echo(case.to_json())
        return
    if not cases:
        click.echo(f"{name} has no cases")
        return
    print_table(console, SHOW_COLUMNS, [
        [str(i), case.id or "-", _input(case), "-" if case.expected is None else case.expected,
         ", ".join(case.tags) or "-"] for i, case in enumerate(cases, 1)],
        wide=wide, title=name)


SHOW_COLUMNS = (Column("#", "right"), Column("id", drop=2), Column("input", flex=True),
                Column("expected", drop=1, flex=True), Column("tags", drop=3))


def _input(case: Case) -> str:
    """A case's input on one line: its vars, else its last message's text."""
    if case.vars:
        return " ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in case.vars.items())
    content = (case.messages or [{}])[-1].get("content")
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    return " ".join(text.split()) or "-"
