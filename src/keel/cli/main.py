"""The ``keel`` command."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.table import Table

from keel import __version__
from keel.cli.common import (
    cli_config,
    cli_settings,
    config_option,
    locations,
    refuse_missing_extras,
    store_source,
    with_store,
)
from keel.cli.params import STATUS, TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.config import Settings
from keel.errors import ConfigError
from keel.types import ROLES

T = TypeVar("T")
console = Console(soft_wrap=True)


def _when(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(fmt)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keel")
def main() -> None:
    """keel: an LLMOps control plane. An OpenAI-compatible gateway that records, governs
    and costs every LLM request.

    Settings come from KEEL_* environment variables (KEEL_DATABASE_URL, KEEL_MASTER_KEY,
    KEEL_CONFIG, ...); providers and models from the YAML config file (keel.yaml).

    \b
    Every command finds the same config file and store as `keel serve`:
    config: --config FILE or KEEL_CONFIG; else keel.yaml in this directory or the
            nearest parent that has one; else ~/.config/keel/keel.yaml; else the
            built-in mock models.
    store:  KEEL_DATABASE_URL; else keel.db in KEEL_DATA_DIR; else in the nearest .keel/
            directory (this one or a parent); else in ~/.local/share/keel.
    `keel config check` shows what was found.
    """


@main.command()
@config_option
@click.option("--host", default=None, help="Interface to bind [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to bind [default: 4000; 0: any free port].")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Start the gateway (and admin API) on HOST:PORT."""
    from keel.server.serve import run_server

    settings = cli_settings(config_path, host=host, port=port)
    refuse_missing_extras(settings)
    config = cli_config(config_path, refused="keel did not start.")
    found = locations(config_path)
    try:
        run_server(settings, config, console=console, config_source=found.describe_config(),
                   store_source=store_source(settings, found))
    except ConfigError as exc:  # composing keel failed (a plugin provider's constructor)
        for line in exc.message.splitlines():
            click.echo(f"config error: {line}", err=True)
        click.echo("keel did not start.", err=True)
        sys.exit(2)


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations to KEEL_DATABASE_URL (default: the SQLite file)."""
    from keel.store import Store

    settings = cli_settings()

    async def go(store: Store) -> str | None:
        return await store.current_revision()

    rev = with_store(go)
    console.print(f"database at revision [bold]{rev}[/bold] ({_safe_url(settings)})")


def _safe_url(settings: Settings) -> str:
    url = settings.resolved_database_url()
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@main.group()
def keys() -> None:
    """Virtual API keys: each attributes spend to a team (and optionally a feature)."""


@keys.command("create")
@click.option("--team", required=True, help="Team the key's requests are attributed to.")
@click.option("--feature", default=None, help="Bind the key to one feature (use case).")
@click.option("--models", default=None, help="Comma-separated models the key may use [all].")
@click.option("--name", default=None, help="A label to recognise the key by.")
@click.option("--allow-feature-override", is_flag=True,
              help="Let callers report another feature via X-Keel-Feature / metadata.feature.")
@click.option("--scope", type=click.Choice(["feedback"]), default=None,
              help="feedback: a browser-safe key that may only POST /api/feedback.")
@click.option("--origin", "origins", multiple=True, metavar="URL",
              help="A browser origin a feedback key may be used from (repeatable), "
                   "e.g. https://app.example.com.")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="A key for the admin API (/api) with this role, refused by the gateway: "
                   "admin (everything), operator (prompts, budgets, costs, kill switches), "
                   "reviewer (held answers), auditor (reads, incl. the audit log), viewer "
                   "(reads), metrics (only GET /metrics, for a Prometheus scraper). Omit it "
                   "for a gateway key.")
@click.option("--org-wide", is_flag=True,
              help="With --role: the key reads every team's traces, feedback, spend, "
                   "measures and reviews [default: only those of --team]. Admin keys are "
                   "always org-wide; auditor keys must be.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys_create(team: str, feature: str | None, models: str | None, name: str | None,
                allow_feature_override: bool, scope: str | None, origins: tuple[str, ...],
                role: str | None, org_wide: bool, as_json: bool) -> None:
    """Create a key. It is shown once; only a salted hash is stored."""
    from keel.audit import local_user
    from keel.keys.service import create_key
    from keel.store import Store

    model_list = [m.strip() for m in models.split(",") if m.strip()] if models else None

    async def go(store: Store) -> tuple[str, dict[str, Any]]:
        return await create_key(store, team=team, feature=feature, models=model_list,
                                name=name, feature_override=allow_feature_override,
                                scope=scope, origins=list(origins) or None, role=role,
                                org_wide=org_wide or None, actor=local_user())

    key, record = with_store(go)
    if as_json:
        click.echo(orjson.dumps({**record, "key": key}).decode())
        return
    kind = f"{role} " if role else "feedback " if scope else ""
    reach = ("" if record["org_wide"] is None else ", reads every team"
             if record["org_wide"] else f", reads team {team} only")
    console.print(f"created {kind}key [bold]{record['id']}[/bold] "
                  f"for team {team}" + (f", feature {feature}" if feature else "") + reach
                  + (f", origins {', '.join(record['origins'])}" if record["origins"] else ""))
    console.print("key (shown once, store it now):")
    click.echo(key)


# on a narrow terminal the highest ``drop`` goes first; id, team, feature and state stay
KEY_COLUMNS = (
    Column("id", whole=True), Column("name", drop=3, flex=True), Column("team"),
    Column("feature"), Column("role", drop=1), Column("reads", drop=2),
    Column("scope", drop=4, flex=True),
    Column("models", drop=5, flex=True), Column("created", drop=7, whole=True),
    Column("last used", drop=6, whole=True), Column("state"),
)


@keys.command("list")
@wide_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of keys).")
def keys_list(wide: bool, as_json: bool) -> None:
    """List keys (never their secrets), fitted to the terminal: the least useful columns
    (created, last used, models, ...) go first on a narrow one; --wide shows them all."""
    from keel.keys.service import public_record
    from keel.store import Store
    from keel.store import keys as q

    async def go(store: Store) -> list[dict[str, Any]]:
        return [public_record(r) for r in await q.list_keys(store)]

    rows = with_store(go)
    if as_json:
        click.echo(orjson.dumps(rows).decode())
        return
    scoped = any(r["scope"] for r in rows)  # the scope column only when some key has one
    columns = [c for c in KEY_COLUMNS if scoped or c.header != "scope"]
    table = []
    for r in rows:
        scope = [(r["scope"] or "gateway") + (f" ({', '.join(r['origins'])})"
                                              if r["origins"] else "")] if scoped else []
        table.append((r["id"], r["name"] or "-", r["team"], r["feature"] or "-",
                      r["role"] or "gateway", _reads(r), *scope,
                      ",".join(r["models"] or []) or "all",
                      _when(r["created_at"]), _when(r["last_used_at"]),
                      "revoked" if r["revoked_at"] else "active"))
    print_table(Console(), columns, table, wide=wide)


def _reads(key: dict[str, Any]) -> str:
    """Whose data a role key reads: ``all teams`` or ``own team`` (``-``: a gateway key)."""
    return "-" if key["org_wide"] is None else "all teams" if key["org_wide"] else "own team"


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id; running servers stop accepting it within seconds."""
    from keel.audit import local_user
    from keel.keys.service import revoke_key
    from keel.store import Store

    async def go(store: Store) -> bool:
        return await revoke_key(store, key_id, actor=local_user())

    if not with_store(go):
        click.echo(f"error: no active key with id '{key_id}'; see `keel keys list`", err=True)
        sys.exit(1)
    console.print(f"revoked {key_id}")


@main.group("admin-key")
def admin_key() -> None:
    """The admin (master) key used for the admin API and `keel` administration."""


@admin_key.command("reset")
@click.confirmation_option(prompt="Replace the admin key? The current one stops working.")
def admin_key_reset() -> None:
    """Generate a new admin key (for a lost generated key; not used with KEEL_MASTER_KEY)."""
    from keel.keys.service import reset_master_key
    from keel.store import Store

    settings = cli_settings()
    if settings.master_key:
        click.echo("error: KEEL_MASTER_KEY is set, so it is the admin key; change it there",
                   err=True)
        sys.exit(2)

    async def go(store: Store) -> str:
        return await reset_master_key(store)

    key = with_store(go)
    console.print("new admin key (shown once; running servers switch to it within seconds):")
    click.echo(key)


# on a narrow terminal the highest ``drop`` goes first; time, id (whole: it is what
# `keel traces show` takes) and status stay
TRACE_COLUMNS = (
    Column("time (UTC)", whole=True), Column("id", whole=True),
    Column("feature", drop=1, flex=True), Column("team", drop=4, flex=True),
    Column("model", drop=3, flex=True), Column("status"), Column("ms", "right", drop=5),
    Column("tokens in/out", "right", drop=6), Column("cost $", "right", drop=2),
)


@main.group("traces", invoke_without_command=True)
@click.option("--feature", default=None)
@click.option("--team", default=None)
@click.option("--model", default=None)
@click.option("--status", type=STATUS, default=None, help="ok, error, or an HTTP status code.")
@click.option("--since", type=TIME, default=None,
              help="Only traces from this time: 15m, 2h, 7d, 2026-11-01T12:00Z or epoch "
                   "seconds.")
@click.option("--until", type=TIME, default=None, help="Only traces before this time.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@wide_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_context
def traces_cmd(ctx: click.Context, feature: str | None, team: str | None, model: str | None,
               status: str | None, since: float | None, until: float | None, limit: int,
               wide: bool, as_json: bool) -> None:
    """Show recent traces, newest first; `keel traces show ID` shows one in full."""
    if ctx.invoked_subcommand is not None:
        return
    from keel.store import Store
    from keel.store.traces import TraceFilter, list_traces

    async def go(store: Store) -> list[dict[str, Any]]:
        rows, _ = await list_traces(store, TraceFilter(
            feature=feature, team=team, model=model, status=status, since=since,
            until=until), limit=limit)
        return rows

    rows = with_store(go)
    if as_json:
        for r in rows:
            click.echo(orjson.dumps(r).decode())
        return
    print_table(Console(), TRACE_COLUMNS, [
        (_when(r["start_time"], "%m-%d %H:%M:%S"), r["id"], r["feature"] or "-",
         r["team"] or "-",
         r["model_requested"] or "-",
         str(r["status"]) + (f" {r['error_type']}" if r["error_type"] else ""),
         f"{r['latency_ms']:.1f}", f"{r['input_tokens']}/{r['output_tokens']}",
         f"{r['cost_usd']:.6f}") for r in rows], wide=wide)


@traces_cmd.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: the trace row, request, response, feedback, "
                   "outcomes.")
def traces_show(trace_id: str, as_json: bool) -> None:
    """One trace in full: who, what and how it went, each attempt, the messages and output
    (when captured), its feedback and the business outcomes that name it."""
    from keel.cli.trace_view import print_trace, trace_detail
    from keel.store import Store

    async def go(store: Store) -> dict[str, Any] | None:
        return await trace_detail(store, trace_id)

    trace = with_store(go)
    if trace is None:
        click.echo(f"error: no trace with id '{trace_id}'; `keel traces` lists recent ids",
                   err=True)
        sys.exit(1)
    if as_json:
        click.echo(orjson.dumps(trace).decode())
        return
    print_trace(Console(), trace)


@main.command("budgets")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def budgets_cmd(config_path: str | None, as_json: bool) -> None:
    """Budgets and their spend in the current period (from Redis when KEEL_REDIS_URL is
    set, else reconciled from the stored traces)."""
    from keel.limits import Limits, connect_redis
    from keel.store import Store

    settings = cli_settings(config_path)
    config = cli_config(config_path)

    async def go(store: Store) -> list[dict[str, Any]]:
        redis = connect_redis(settings.redis_url) if settings.redis_url else None
        limits = Limits(config, store, redis, prefix=settings.redis_prefix)
        try:
            await limits.start()
            return await limits.status()
        finally:
            await limits.aclose()
            if redis is not None:
                await redis.aclose()

    rows = with_store(go)
    if as_json:
        click.echo(orjson.dumps(rows).decode())
        return
    if not rows:
        console.print("no budgets configured (add budgets: to the config file)")
        return
    table = Table("scope", "name", "period", "budget $", "spent $", "reserved $",
                  "remaining $", "resets (UTC)", "state")
    colour = {"ok": "green", "soft": "yellow", "exceeded": "red"}
    for r in rows:
        name = r["name"] + (" (each)" if r["match"] == "*" else "")
        table.add_row(r["scope"], name, r["period"], f"{r['usd']:.2f}", f"{r['spent']:.4f}",
                      f"{r['reserved']:.4f}", f"{r['remaining']:.4f}", _when(r["resets_at"]),
                      f"[{colour[r['state']]}]{r['state']}[/]")
    console.print(table)
    console.print(f"backend: {rows[0]['backend']}")


def _register() -> None:
    from keel.cli.alerts import alerts_group
    from keel.cli.audit import audit
    from keel.cli.config_cmd import config_group
    from keel.cli.costs import costs
    from keel.cli.datasets import datasets
    from keel.cli.demo import demo
    from keel.cli.drift import drift_group
    from keel.cli.evals import evals
    from keel.cli.features import features
    from keel.cli.prompts import prompts
    from keel.cli.reviews import reviews
    from keel.cli.stats import purge_cmd, rollups_group, stats

    main.add_command(config_group)
    main.add_command(prompts)
    main.add_command(stats)
    main.add_command(alerts_group)
    main.add_command(drift_group)
    main.add_command(rollups_group)
    main.add_command(purge_cmd)
    main.add_command(costs)
    main.add_command(datasets)
    main.add_command(evals)
    main.add_command(audit)
    main.add_command(features)
    main.add_command(reviews)
    main.add_command(demo)


_register()
