"""``keel eval``: run suites through the gateway, list and show runs.

Exit codes (run and gate): 0 the suite passed, 1 a threshold was broken or the candidate
regressed, 2 the suite could not be run or judged (bad suite, missing dataset or prompt,
too many errored cases).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from keel.cli.common import cli_config, cli_settings, config_option, listed, with_store
from keel.cli.params import TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.errors import KeelError
from keel.evals.runner.pipeline import Runner
from keel.evals.suite import Suite, load_suite
from keel.store import Store
from keel.store import evals as q

T = TypeVar("T")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def with_gateway(config_path: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Start keel in this process (store, prompts, gateway, trace writer) without serving
    HTTP, run ``fn(state)``, then stop it cleanly (every trace written). A KeelError exits 2."""
    from keel.server.state import AppState

    settings = cli_settings(config_path)
    config = cli_config(config_path)

    async def go() -> T:
        state = AppState.build(settings, config)
        await state.start(schedule=False)
        task = asyncio.current_task()
        if task is not None:  # SIGTERM (a CI timeout): stop, mark the runs failed, exit 2
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await fn(state)
        finally:
            await state.aclose()

    try:
        return asyncio.run(go())
    except (asyncio.CancelledError, KeyboardInterrupt):
        err_console.print("[red]interrupted:[/red] unfinished runs are marked failed")
        sys.exit(EXIT_ERROR)
    except KeelError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # the store unreachable, ...: "could not run" (2), never 1
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False)
        sys.exit(EXIT_ERROR)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def load(path: Path, *, repeats: int | None = None, concurrency: int | None = None) -> Suite:
    try:
        suite = load_suite(path)
    except KeelError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        sys.exit(EXIT_ERROR)
    updates: dict[str, Any] = {}
    if repeats is not None:
        updates["repeats"] = repeats
    if concurrency is not None:
        updates["concurrency"] = concurrency
    if updates:
        suite.spec = suite.spec.model_copy(update=updates)
    return suite


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console, transient=False)


async def run_with_progress(runner_args: tuple[Any, ...], suite: Suite, *,
                            quiet: bool = False, **kw: Any) -> list[dict[str, Any]]:
    """Run ``suite`` with a progress bar on stderr (none when ``quiet``)."""
    store, prompts, gateway, use_cache = runner_args
    if quiet:
        return await Runner(store, prompts, gateway, use_cache=use_cache).run(suite, **kw)
    with progress_bar() as bar:
        task = bar.add_task(suite.name, total=None, rate="")
        loop = asyncio.get_running_loop()
        start = loop.time()

        def advance(done: int, total: int) -> None:
            elapsed = max(1e-6, loop.time() - start)
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:.1f}/s")

        runner = Runner(store, prompts, gateway, use_cache=use_cache, progress=advance)
        return await runner.run(suite, **kw)


def print_run(run: dict[str, Any]) -> None:
    summary = orjson.loads(run["summary"] or "{}")
    table = Table(title=f"{run['suite']} · {run['target']} · run {run['id'][:12]}",
                  title_justify="left")
    for col in ("scorer", "pass rate", "passed", "failed", "errored", "mean"):
        table.add_column(col, justify="left" if col == "scorer" else "right")
    for name, s in (summary.get("scorers") or {}).items():
        table.add_row(name, _rate(s["pass_rate"]), str(s["passed"]), str(s["failed"]),
                      str(s["errored"]), "-" if s["mean"] is None else f"{s['mean']:.3f}")
    console.print(table)
    console.print(
        f"dataset {run['dataset_name']}@{run['dataset_version']} · {run['cases']} cases x "
        f"{run['executions'] // max(1, run['cases'])} · pass rate "
        f"[bold]{_rate(summary.get('pass_rate'))}[/bold] · passed {run['passed']} · failed "
        f"{run['failed']} · errored {run['errored']} · flaky cases {summary.get('flaky_cases', 0)}")
    console.print(
        f"cost ${run['cost_usd']:.4f} spent (answers ${summary.get('full_cost_usd', 0.0):.4f}"
        f" uncached, {run['cached']} from cache; scorers "
        f"${summary.get('scoring_cost_usd', 0.0):.4f}) · tokens {run['input_tokens']} in / "
        f"{run['output_tokens']} out · latency p50 {_ms(run['latency_p50_ms'])} ms, p95 "
        f"{_ms(run['latency_p95_ms'])} ms, p99 {_ms(run['latency_p99_ms'])} ms"
        + (f" · commit {run['git_commit'][:12]}" if run.get("git_commit") else ""))
    th = summary.get("thresholds") or {}
    for failure in th.get("failures") or ():
        console.print(f"[red]threshold:[/red] {escape(str(failure))}", highlight=False)
    if th.get("judgeable") and summary.get("error_note"):  # else a threshold line says it
        console.print(f"[red]errors:[/red] {escape(str(summary['error_note']))}",
                      highlight=False)
    for flaky in (summary.get("flaky") or [])[:5]:
        console.print(f"[yellow]flaky:[/yellow] case {flaky['case']} passed "
                      f"{flaky['pass_rate']:.0%} of repeats", highlight=False)


def run_exit_code(runs: list[dict[str, Any]]) -> int:
    verdicts = [orjson.loads(r["summary"] or "{}").get("thresholds") or {} for r in runs]
    if any(not v.get("judgeable", False) for v in verdicts):
        return EXIT_ERROR
    return EXIT_OK if all(v.get("ok") for v in verdicts) else EXIT_FAILED


async def resolve_run(store: Store, ref: str) -> dict[str, Any]:
    """A run by id or unique id prefix."""
    from keel.errors import NotFound

    ids = await q.find_runs(store, ref)
    if len(ids) != 1:
        what = "no eval run" if not ids else "more than one eval run"
        raise NotFound(f"{what} matches '{ref}'; `keel eval runs` lists them")
    run = await q.get_run(store, ids[0])
    assert run is not None
    return run


@click.group("eval")
def evals() -> None:
    """Eval suites: run them through the gateway, compare runs, gate releases.

    Exit codes of run and gate: 0 passed, 1 threshold broken or regression, 2 error
    (bad suite, missing dataset/prompt/scorer, too many errored cases).
    """




@evals.command("run")
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.option("--repeats", type=click.IntRange(1, 100), default=None,
              help="Run each case N times and report flakiness [default: the suite's].")
@click.option("--concurrency", "-c", type=click.IntRange(1, 512), default=None,
              help="Requests in flight at once [default: the suite's, 8].")
@click.option("--no-cache", is_flag=True, help="Call the models even for answers cached "
                                               "by an earlier run.")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop",
              show_default=True, help="A malformed dataset line stops the run, or is skipped.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def run_cmd(suite_file: Path, config_path: str | None, repeats: int | None,
            concurrency: int | None, no_cache: bool, on_error: str, quiet: bool) -> None:
    """Run SUITE_FILE: every case against every target, scored; one stored run per target."""
    suite = load(suite_file, repeats=repeats, concurrency=concurrency)

    async def go(state: Any) -> list[dict[str, Any]]:
        gateway = state.local_gateway(suite.spec.feature)
        return await run_with_progress((state.store, state.prompts, gateway, not no_cache),
                                       suite, quiet=quiet, on_error=on_error)

    runs = with_gateway(config_path, go)
    for run in runs:
        print_run(run)
    sys.exit(run_exit_code(runs))


@evals.command("runs")
@click.option("--suite", default=None, help="Only this suite's runs.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def runs_cmd(suite: str | None, limit: int, as_json: bool, wide: bool) -> None:
    """List recent eval runs, newest first."""
    rows = with_store(lambda store: q.list_runs(store, suite=suite, limit=limit))
    if as_json:
        for r in rows:
            click.echo(orjson.dumps({k: v for k, v in r.items() if k != "config"}))
        return
    out = []
    for r in rows:
        summary = orjson.loads(r["summary"] or "{}")
        out.append([r["id"][:12], _when(r["started_at"]), r["suite"], r["target"],
                    f"{r['dataset_name']}@{r['dataset_version']}", r["status"],
                    _rate(summary.get("pass_rate")), str(r["errored"]),
                    f"{r['cost_usd']:.4f}", _ms(r["latency_p95_ms"])])
    print_table(console, RUN_COLUMNS, out, wide=wide)


# the run, what ran and how it went stay on a narrow terminal
RUN_COLUMNS = (Column("run", whole=True), Column("started (UTC)", drop=2, whole=True),
               Column("suite"), Column("target"), Column("dataset", drop=4),
               Column("status"), Column("pass rate", "right"),
               Column("errored", "right", drop=3), Column("cost $", "right", drop=1),
               Column("p95 ms", "right", drop=5))


@evals.command("show")
@click.argument("run_ref")
@click.option("--failures", is_flag=True, help="Also list failed and errored cases.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the run as JSON (with --failures, its failed and errored cases too).")
def show_cmd(run_ref: str, failures: bool, as_json: bool) -> None:
    """Show one run (by id or id prefix): per-scorer results, cost, latency, flaky cases."""

    async def go(store: Store) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        run = await resolve_run(store, run_ref)
        bad: list[dict[str, Any]] = []
        if failures:
            async for row in q.iter_results(store, run["id"]):
                if row["status"] != "passed" and len(bad) < 200:
                    bad.append(row)
        return run, bad

    run, bad = with_store(go)
    if as_json:
        data = {**run, **{k: orjson.loads(run[k]) if run.get(k) else None
                          for k in ("config", "summary")}}
        if failures:
            data["failures"] = [{**row, "scores": orjson.loads(row["scores"])} for row in bad]
        click.echo(orjson.dumps(data).decode())
        return
    print_run(run)
    for row in bad:
        reasons = [f"{s['name']}: {s['error'] or s['explanation']}"
                   for s in orjson.loads(row["scores"]) if s["passed"] is False or s["error"]]
        console.print(f"[{'red' if row['status'] == 'failed' else 'yellow'}]{row['status']}"
                      f"[/] case {row['case_id']} (repeat {row['repeat']}): "
                      f"{row['error'] or '; '.join(reasons)}", highlight=False)


report_options = [
    click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path),
                 default=None, help="Write a self-contained HTML report here."),
    click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
                 default=None, help="Write the JSON report here."),
    click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path),
                 default=None, help="Write a JUnit XML report here (for CI test views)."),
]


def with_reports(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(report_options):
        fn = option(fn)
    return fn


def _signed(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, "+" + fmt)


def print_comparison(cmp: Any, verdict: Any | None = None) -> None:
    a, b = cmp.a, cmp.b
    table = Table(title=f"baseline {a.target} (run {a.run_id[:12]})  vs  candidate "
                        f"{b.target} (run {b.run_id[:12]})", title_justify="left")
    for col in ("", "baseline", "candidate", "change"):
        table.add_column(col, justify="left" if not col else "right")

    def rate(r: Any) -> str:
        return "-" if r.rate is None else f"{r.rate:.1%} [{r.lo:.1%}, {r.hi:.1%}]"

    table.add_row("pass rate (95% CI)", rate(a.pass_rate), rate(b.pass_rate),
                  _signed(cmp.deltas["pass_rate"].delta, ".1%"))
    for name in sorted(set(a.scorers) | set(b.scorers)):
        sa, sb = a.scorers.get(name), b.scorers.get(name)
        da = sa.pass_rate.rate if sa else None
        db = sb.pass_rate.rate if sb else None
        table.add_row(f"  {name}", rate(sa.pass_rate) if sa else "-",
                      rate(sb.pass_rate) if sb else "-",
                      _signed(db - da if da is not None and db is not None else None, ".1%"))
    d = cmp.deltas
    table.add_row("cost (uncached) $", f"{a.full_cost_usd:.4f}", f"{b.full_cost_usd:.4f}",
                  _signed(d["full_cost_usd"].relative, ".1%"))
    for key, label in (("latency_p50_ms", "latency p50 ms"), ("latency_p95_ms",
                                                              "latency p95 ms")):
        table.add_row(label, _ms(d[key].a), _ms(d[key].b), _signed(d[key].delta, ".0f"))
    table.add_row("tokens in / out", f"{a.input_tokens} / {a.output_tokens}",
                  f"{b.input_tokens} / {b.output_tokens}", "")
    table.add_row("errored", str(a.errored), str(b.errored), _signed(d["errored"].delta, ".0f"))
    table.add_row("flaky cases", str(a.flaky_cases), str(b.flaky_cases), "")
    console.print(table)
    console.print(
        f"{cmp.cases_compared} cases compared (by {cmp.matched_by}): {cmp.worse} worse, "
        f"{cmp.better} better, {cmp.ties} unchanged; sign test p(worse) = {cmp.p_worse:.4f}; "
        f"pass->fail {cmp.pass_to_fail.count}, fail->pass {cmp.fail_to_pass.count}")
    for flip in cmp.pass_to_fail.examples[:10]:
        why = "; ".join(flip.b_failures)[:200]
        console.print(f"[red]pass->fail[/red] case {flip.case_id} "
                      f"({flip.a_rate:.0%} -> {flip.b_rate:.0%}) {why}", highlight=False)
    for flip in cmp.fail_to_pass.examples[:5]:
        console.print(f"[green]fail->pass[/green] case {flip.case_id} "
                      f"({flip.a_rate:.0%} -> {flip.b_rate:.0%})", highlight=False)
    for warning in cmp.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if verdict is not None:
        colour = {0: "green", 1: "red"}.get(verdict.code, "yellow")
        console.print(f"[bold {colour}]gate: {verdict.result.upper()}[/] (exit {verdict.code})")
        for reason in verdict.reasons:
            console.print(f"  - {reason}", highlight=False)


@evals.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@with_reports
def compare_cmd(run_a: str, run_b: str, html: Path | None, json_path: Path | None,
                junit: Path | None) -> None:
    """Compare RUN_A (before) with RUN_B (after): pass rates with 95% intervals, cases that
    flipped, a paired sign test, cost and latency changes. Runs by id or id prefix.

    Also prints the verdict the gate's rule (default alpha and min_effect) gives for B
    against A; the exit code is 0 unless the runs cannot be compared (2)."""
    from keel.evals.compare import compare_runs, gate_verdict
    from keel.evals.report.files import write_comparison_report
    from keel.evals.suite import GateSpec

    async def go(store: Store) -> Any:
        a, b = await resolve_run(store, run_a), await resolve_run(store, run_b)
        cmp = await compare_runs(store, a["id"], b["id"])
        thresholds = orjson.loads(b["summary"] or "{}").get("thresholds") or {}
        verdict = gate_verdict(cmp, GateSpec(), thresholds)
        await write_comparison_report(store, cmp, verdict, html=html, json=json_path,
                                      junit=junit)
        return cmp, verdict

    cmp, verdict = with_store(go)
    print_comparison(cmp, verdict)
    if verdict.code == EXIT_ERROR:  # the runs cannot be compared (failed, unjudgeable...)
        sys.exit(EXIT_ERROR)


@evals.command("gate")
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--baseline", default=None,
              help="Label of the candidate's prompt (e.g. production) or a prompt ref "
                   "(name@3) [default: the suite's gate.baseline].")
@config_option
@click.option("--repeats", type=click.IntRange(1, 100), default=None)
@click.option("--concurrency", "-c", type=click.IntRange(1, 512), default=None)
@click.option("--no-cache", is_flag=True, help="Call the models even for cached answers.")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop",
              show_default=True, help="A malformed dataset line stops the run, or is skipped.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@with_reports
def gate_cmd(suite_file: Path, baseline: str | None, config_path: str | None,
             repeats: int | None, concurrency: int | None, no_cache: bool, on_error: str,
             quiet: bool, html: Path | None, json_path: Path | None,
             junit: Path | None) -> None:
    """Run the suite's candidate and its baseline side by side; exit 1 if the candidate is
    worse beyond noise or breaks a threshold.

    Rule: the candidate regressed when its pass rate over the shared cases is lower than
    the baseline's by more than gate.min_effect (default 0.02) and a one-sided exact sign
    test over the cases (worse vs better, ties dropped) gives p < gate.alpha (default
    0.05). Exit codes: 0 pass, 1 regression or threshold broken, 2 error.
    """
    from keel.evals.gate import run_gate
    from keel.evals.report.files import write_comparison_report

    suite = load(suite_file, repeats=repeats, concurrency=concurrency)

    async def go(state: Any) -> Any:
        gateway = state.local_gateway(suite.spec.feature)
        runner = Runner(state.store, state.prompts, gateway, use_cache=not no_cache)
        if quiet:
            outcome = await run_gate(runner, suite, baseline, on_error=on_error)
        else:
            with progress_bar() as bar:
                task = bar.add_task(f"{suite.name} (candidate + baseline)", total=None,
                                    rate="")
                loop = asyncio.get_running_loop()
                start = loop.time()

                def advance(done: int, total: int) -> None:
                    rate = done / max(1e-6, loop.time() - start)
                    bar.update(task, completed=done, total=total, rate=f"{rate:.1f}/s")

                runner.progress = advance
                outcome = await run_gate(runner, suite, baseline, on_error=on_error)
        try:
            await write_comparison_report(state.store, outcome.comparison, outcome.verdict,
                                          html=html, json=json_path, junit=junit)
        except OSError as exc:  # the verdict stands; the report could not be written
            outcome.report_error = str(exc)
        return outcome

    outcome = with_gateway(config_path, go)
    print_comparison(outcome.comparison, outcome.verdict)
    if outcome.report_error:
        err_console.print(f"[red]error:[/red] writing a report failed: {outcome.report_error}",
                          highlight=False)
        sys.exit(EXIT_ERROR)
    sys.exit(outcome.verdict.code)


@evals.command("report")
@click.argument("run_ref")
@with_reports
def report_cmd(run_ref: str, html: Path | None, json_path: Path | None,
               junit: Path | None) -> None:
    """Write reports of one run (HTML, JSON, JUnit), readable without the server."""
    from keel.evals.report.files import write_run_report

    if not (html or json_path or junit):
        raise click.UsageError("name at least one of --html, --json, --junit")

    async def go(store: Store) -> dict[str, Any]:
        run = await resolve_run(store, run_ref)
        await write_run_report(store, run["id"], html=html, json=json_path, junit=junit)
        return run

    run = with_store(go)
    for path in (html, json_path, junit):
        if path is not None:
            console.print(f"wrote {path} (run {run['id'][:12]})")


@evals.command("events")
@click.option("--since", type=TIME, default=None,
              help="Only events from this time: UNIX seconds, an ISO date or time, or a "
                   "duration back from now (30m, 2h, 7d, 1w).")
@click.option("--until", type=TIME, default=None, help="Only events before this time (same forms).")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def events_cmd(since: float | None, until: float | None, limit: int, as_json: bool,
               wide: bool) -> None:
    """Regression and error events recorded by scheduled suites, newest first."""
    rows = with_store(lambda store: q.list_events(store, since=since, until=until, limit=limit))
    for r in rows:
        r["detail"] = orjson.loads(r["detail"]) if r.get("detail") else None
    if listed(rows, as_json, "no eval events" + (" match" if since is not None or until is not None
                                               else " yet")):
        return
    print_table(console, EVENT_COLUMNS, [
        [_when(r["at"]), r["kind"], r["suite"], (r["run_id"] or "-")[:12],
         "; ".join((r["detail"] or {}).get("reasons") or []) or "-"] for r in rows],
        wide=wide)


EVENT_COLUMNS = (Column("at (UTC)", whole=True), Column("kind"), Column("suite"),
                 Column("run", drop=1, whole=True), Column("why", flex=True))
