"""``keel reviews``: answers held for a human decision (list, show, approve, edit, reject)."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.text import Text

from keel.cli.common import listed, with_store
from keel.cli.tables import Column, print_table, wide_option
from keel.store import Store
from keel.text import answer_text

console = Console(soft_wrap=True)
STATUS_COLOUR = {"pending": "yellow", "approved": "green", "rejected": "red",
                 "expired": "red"}


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


reviewer_option = click.option(
    "--reviewer", default=None, metavar="NAME",
    help="Who decides (recorded in the audit log) [default: $USER].")


@click.group("reviews")
def reviews() -> None:
    """Answers held for a human decision. A pending answer is released to the client only
    once approved (as is, or edited); rejected and expired ones are refused. Every decision
    is in the audit log and is recorded as reviewer feedback on the trace."""


@reviews.command("list")
@click.option("--status", type=click.Choice(["pending", "approved", "rejected", "expired"]),
              default=None, help="Only reviews in this state.")
@click.option("--feature", default=None, help="Only this feature's reviews.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def list_cmd(status: str | None, feature: str | None, limit: int, as_json: bool,
             wide: bool) -> None:
    """Reviews, newest first (`keel reviews show ID` for the answer)."""
    from keel.review import ReviewService

    async def go(store: Store) -> list[dict[str, Any]]:
        rows, _ = await ReviewService(store).list_reviews(status=status, feature=feature,
                                                           limit=limit)
        return [r.to_json() for r in rows]

    rows = with_store(go)
    if listed(rows, as_json, "no reviews" + (f" {status}" if status else "")
              + (f" for feature {feature}" if feature else "")):
        return
    now = time.time()
    out = []
    for r in rows:
        d = r["decision"] or {}
        state = Text(r["status"], style=STATUS_COLOUR[r["status"]])
        if r["status"] == "pending":
            state.append(f" ({max(r['expires_at'] - now, 0):.0f}s)")
        out.append([_when(r["created_at"]), r["id"], state, r["feature"] or "-",
                    r["policy"] or "-", d.get("by") or "-"])
    print_table(console, LIST_COLUMNS, out, wide=wide)


LIST_COLUMNS = (Column("created (UTC)", drop=3, whole=True), Column("id", whole=True),
                Column("status"), Column("feature"), Column("policy", drop=2),
                Column("decided by", drop=1))


@reviews.command("show")
@click.argument("review_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(review_id: str, as_json: bool) -> None:
    """One review: why it was held, the answer, the decision and the hashes."""
    from keel.review import ReviewService

    async def go(store: Store) -> dict[str, Any] | None:
        review = await ReviewService(store).get(review_id)
        return review.to_json(detail=True) if review is not None else None

    r = with_store(go)
    if r is None:
        click.echo(f"error: no review with id '{review_id}'; see `keel reviews list`",
                   err=True)
        sys.exit(1)
    if as_json:
        click.echo(orjson.dumps(r).decode())
        return
    console.print(f"review [bold]{r['id']}[/bold]: "
                  f"[{STATUS_COLOUR[r['status']]}]{r['status']}[/] ({r['mode']})")
    for label, value in (("trace", r["trace_id"]), ("feature", r["feature"]),
                         ("team", r["team"]), ("key", r["key_id"]),
                         ("policy", f"{r['policy'] or '-'}@{r['policy_version'] or '-'}"),
                         ("created", _when(r["created_at"]) + " UTC"),
                         ("expires", _when(r["expires_at"]) + " UTC"),
                         ("content sha256", r["content_hash"])):
        console.print(f"  {label}: {value or '-'}")
    console.print("  held because:")
    for reason in r["reasons"] or [{}]:
        console.print("    - " + (orjson.dumps(reason).decode() if reason else "-"),
                      markup=False)
    console.print("  answer:")
    console.print(_indent(r["answer"]), markup=False, highlight=False)
    if r["decision"]:
        d = r["decision"]
        console.print(f"  decision: {d['decision']} by {d['by']} at {_when(d['at'])} UTC"
                      + (f": {d['reason']}" if d["reason"] else ""), markup=False)
        if d["decision"] == "edit":
            console.print("  released instead:")
            console.print(_indent(answer_text(r["approved"])), markup=False, highlight=False)
        if r["approved_hash"]:
            console.print(f"  approved sha256: {r['approved_hash']}")
    if r["released_at"]:
        console.print(f"  released: {_when(r['released_at'])} UTC")


def _indent(text: str | None) -> str:
    return "\n".join("    " + line for line in (text or "(no text)").splitlines() or [""])


def _decide(review_id: str, decision: str, reviewer: str | None, reason: str | None,
            content: str | None = None) -> dict[str, Any]:
    from keel.audit import local_user
    from keel.review import ReviewService

    who = reviewer or local_user()

    async def go(store: Store) -> dict[str, Any]:
        review = await ReviewService(store).decide(review_id, decision=decision, reviewer=who,
                                                   reason=reason, content=content)
        return review.to_json()

    return with_store(go)


@reviews.command("approve")
@click.argument("review_id")
@click.option("--reason", default=None, help="Why (recorded).")
@reviewer_option
def approve_cmd(review_id: str, reason: str | None, reviewer: str | None) -> None:
    """Release REVIEW_ID's answer as it is."""
    r = _decide(review_id, "approve", reviewer, reason)
    console.print(f"approved {r['id']}: the answer is released to the client")


@reviews.command("reject")
@click.argument("review_id")
@click.option("--reason", required=True, help="Why (the client is told; recorded).")
@reviewer_option
def reject_cmd(review_id: str, reason: str, reviewer: str | None) -> None:
    """Refuse REVIEW_ID's answer: the client gets a 403 review_rejected with the reason."""
    r = _decide(review_id, "reject", reviewer, reason)
    console.print(f"rejected {r['id']}: {reason}", markup=False)


@reviews.command("edit")
@click.argument("review_id")
@click.option("--content", default=None, help="The text to release instead.")
@click.option("--content-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A file holding the text to release instead.")
@click.option("--reason", default=None, help="Why (recorded).")
@reviewer_option
def edit_cmd(review_id: str, content: str | None, content_file: Path | None,
             reason: str | None, reviewer: str | None) -> None:
    """Release REVIEW_ID with its answer's text replaced (the edit is measured as rework)."""
    if (content is None) == (content_file is None):
        raise click.UsageError("give the new text with exactly one of --content or "
                               "--content-file")
    text = content_file.read_text(encoding="utf-8") if content_file is not None else content
    r = _decide(review_id, "edit", reviewer, reason, text)
    console.print(f"approved {r['id']} with your edit: the edited answer is released")
