"""``keel audit``: list, verify, checkpoint and export the tamper-evident audit log."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from keel.cli.common import listed, with_store
from keel.cli.params import TIME
from keel.cli.tables import Column, print_table, wide_option
from keel.config import Settings
from keel.store import Store

console = Console(soft_wrap=True)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(h: str | None) -> str:
    return h[:10] if h else "-"


@click.group("audit")
def audit() -> None:
    """The audit log: an append-only, tamper-evident record of key, prompt, config, budget,
    cost and retention changes and of the trace batches stored. Checkpoints are signed with
    KEEL_AUDIT_KEY and published to the witness outside the database (KEEL_AUDIT_WITNESS)."""


@audit.command("log")
@click.option("--since", type=TIME, default=None,
              help="Only entries from this time: ISO date or time, UNIX seconds or 7d.")
@click.option("--until", type=TIME, default=None, help="Only entries before this time.")
@click.option("--action", default=None,
              help="Only this action (key.create), or a family ending in '.' (prompt.).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def log_cmd(since: float | None, until: float | None, action: str | None, limit: int,
            as_json: bool, wide: bool) -> None:
    """List entries, newest first."""
    from keel.audit import AuditLog

    async def go(store: Store) -> list[dict[str, Any]]:
        rows, _ = await AuditLog.from_settings(store).entries(since=since, until=until,
                                                              action=action, limit=limit)
        return rows

    rows = with_store(go)
    filtered = since is not None or until is not None or action
    if listed(rows, as_json, "no audit entries" + (" match" if filtered else " yet")):
        return
    print_table(console, LOG_COLUMNS, [
        [str(r["seq"]), _when(r["at"]), r["actor"] or "-", r["action"], r["target"] or "-",
         _short(r["before_hash"]), _short(r["after_hash"])] for r in rows], wide=wide)


# who did what to what stays on a narrow terminal; the hashes go first
LOG_COLUMNS = (Column("seq", "right"), Column("time (UTC)", whole=True),
               Column("actor", drop=1), Column("action"), Column("target", flex=True),
               Column("before", drop=3), Column("after", drop=2))


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}..{last}"


def _print_report(report: Any, what: str) -> None:
    if not report.ok:
        where = (f" at entry {report.broken_seq}" if report.broken_seq is not None
                 else f" at checkpoint #{report.broken_checkpoint}"
                 if report.broken_checkpoint is not None else "")
        click.echo(f"BROKEN{where}: {report.problem}")
        if report.entries:
            click.echo(f"{_span(report.first_seq, report.last_seq)} checked out before it")
        return
    if not report.entries and not report.covered:
        click.echo(f"OK: {what} has no entries")
        return
    cp = report.covered
    line = f"OK: {report.entries} entries"
    if report.first_seq is not None:
        line += f" ({report.first_seq}..{report.last_seq})"
    click.echo(line + f", {report.checkpoints} checkpoint(s) checked")
    if cp is not None:
        kind = ("signed" if report.signed else "signed (signature not checked)"
                if cp.get("signature") else "unsigned")
        click.echo(f"covered by {kind} checkpoint #{cp['id']}: entries 1..{cp['size']}, "
                   f"root {cp['root']}, at {_when(cp['at'])} UTC")
    if report.uncovered:
        n = report.uncovered
        click.echo(f"{n} newer {'entry is' if n == 1 else 'entries are'} chained but not yet "
                   f"covered by a {'signed ' if report.signed else ''}checkpoint "
                   "(`keel audit checkpoint`)")
    if report.witnessed:
        click.echo(f"witnessed: {report.witnessed} checkpoint(s) known from outside the "
                   f"database agree with it (the newest covers entries "
                   f"1..{report.witnessed_size})")
    for note in report.notes:
        click.echo(f"note: {note}")


@audit.command("verify")
@click.option("--bundle", "bundle_path", type=click.Path(exists=True, dir_okay=False,
                                                         path_type=Path), default=None,
              help="Check an exported bundle offline instead of the store.")
@click.option("--witness", "witness_paths", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Check the store against the checkpoints in this witness file or "
                   "exported bundle (repeatable) [default: the KEEL_AUDIT_WITNESS files "
                   "that exist].")
@click.option("--checkpoint", "given", multiple=True, metavar="SIZE:TREEHEAD",
              help="A checkpoint known from elsewhere, as `keel audit checkpoint` prints "
                   "it: the log must have at least SIZE entries whose tree head is TREEHEAD "
                   "(repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_cmd(bundle_path: Path | None, witness_paths: tuple[Path, ...],
               given: tuple[str, ...], as_json: bool) -> None:
    """Check every entry and checkpoint (or a bundle): prints OK and the checkpoint that
    covers the entries, or the first broken entry and what is wrong (exit status 1).

    The store is also checked against the checkpoints witnessed outside it: the log must
    be at least as long as each, match its tree head, and still hold it."""
    from keel.audit import AuditLog, verify_bundle
    from keel.audit.chain import VerifyReport
    from keel.audit.witness import WitnessError, parse_known, read_known

    if bundle_path is not None and (witness_paths or given):
        raise click.UsageError("--witness and --checkpoint check the store; a --bundle is "
                               "checked on its own")
    try:
        known = ([parse_known(g) for g in given]
                 + [k for p in witness_paths for k in read_known(p)])
    except WitnessError as exc:
        raise click.BadParameter(str(exc), param_hint="--witness/--checkpoint") from None
    if bundle_path is not None:
        try:
            data = orjson.loads(bundle_path.read_bytes())
        except orjson.JSONDecodeError as exc:
            report = VerifyReport(ok=False, problem=f"not valid JSON (damaged?): {exc}")
        else:
            report = verify_bundle(data, key=Settings().audit_key)
        what = f"bundle {bundle_path}"
    else:
        async def go(store: Store) -> VerifyReport:
            # --witness files replace the configured ones; --checkpoint values add to them
            return await AuditLog.from_settings(store).verify(known,
                                                              witness=not witness_paths)

        report = with_store(go)
        what = "the audit log"
    if as_json:
        click.echo(orjson.dumps(report.to_json()).decode())
    else:
        _print_report(report, what)
    if not report.ok:
        sys.exit(1)


@audit.command("checkpoint")
def checkpoint_cmd() -> None:
    """Write a checkpoint covering every entry now (signed with KEEL_AUDIT_KEY if set, and
    published to KEEL_AUDIT_WITNESS); keel also writes one every KEEL_AUDIT_CHECKPOINT_EVERY
    entries."""
    from keel.audit import AuditLog

    async def go(store: Store) -> dict[str, Any] | None:
        return await AuditLog.from_settings(store).checkpoint()

    cp = with_store(go)
    if cp is None:
        console.print("the audit log is empty; nothing to checkpoint")
        return
    kind = "signed" if cp["signature"] else "unsigned (KEEL_AUDIT_KEY is not set)"
    click.echo(f"checkpoint #{cp['id']}: entries 1..{cp['size']}, root {cp['root']}, {kind}")
    click.echo(f"to check the log against it later: keel audit verify --checkpoint "
               f"{cp['size']}:{cp['root']}")


@audit.command("export")
@click.option("--since", type=TIME, default=None,
              help="Entries from this time on: ISO date or time, UNIX seconds or 30d "
                   "[default: all].")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Bundle file to write ('-': standard output).")
def export_cmd(since: float | None, out: Path) -> None:
    """Write a bundle that `keel audit verify --bundle` checks offline: the entries, the
    Merkle data anchoring them to the log before, and the checkpoints covering them (one
    written now). Refuses if the log does not verify."""
    from keel.audit import AuditLog

    async def go(store: Store) -> dict[str, Any]:
        return await AuditLog.from_settings(store).export(since)

    bundle = with_store(go)
    data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n"
    if str(out) == "-":
        click.echo(data, nl=False)
        return
    out.write_bytes(data)
    cp = bundle["checkpoints"][-1] if bundle["checkpoints"] else None
    signed = "signed" if cp and cp["signature"] else "unsigned"
    console.print(f"wrote {len(bundle['entries'])} entries and {len(bundle['checkpoints'])} "
                  f"checkpoint(s) ({signed}) to {out}")
