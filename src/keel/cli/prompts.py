"""``keel prompts``: push, list, show, diff, label and roll back prompt versions."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import yaml
from rich.console import Console
from rich.syntax import Syntax

from keel.cli.common import listed, with_store
from keel.cli.tables import Column, print_table, wide_option
from keel.prompts import PromptRegistry, PromptSpec, PromptSpecError
from keel.store import Store

T = TypeVar("T")
console = Console(soft_wrap=True)


def _with_registry(fn: Callable[[PromptRegistry], Awaitable[T]]) -> T:
    async def go(store: Store) -> T:
        reg = PromptRegistry(store)
        await reg.refresh(force=True)
        return await fn(reg)

    return with_store(go)


def _actor(author: str | None) -> str | None:
    return author or os.environ.get("USER") or None


@click.group("prompts")
def prompts() -> None:
    """Prompt registry: immutable versions and movable labels (name@3, name@production)."""


@prompts.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--message", default=None, help="What changed (kept with the version).")
@click.option("--author", default=None, help="Who changed it [default: $USER].")
@click.option("--label", "labels", multiple=True, help="Also point this label at it.")
def push(file: Path, message: str | None, author: str | None, labels: tuple[str, ...]) -> None:
    """Add FILE (YAML) as a new version; identical content is not added twice."""
    try:
        spec = PromptSpec.parse(yaml.safe_load(file.read_text(encoding="utf-8")), str(file))
    except (PromptSpecError, yaml.YAMLError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)

    async def go(reg: PromptRegistry) -> tuple[int, bool]:
        v, created = await reg.push(spec, message=message, author=_actor(author))
        for label in labels:
            await reg.set_label(f"{v.name}@{v.version}", label, actor=_actor(author))
        return v.version, created

    version, created = _with_registry(go)
    state = "pushed" if created else "unchanged, already"
    suffix = f"; labels: {', '.join(labels)}" if labels else ""
    console.print(f"{state} {spec.name}@{version}{suffix}")


@prompts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@wide_option
def list_cmd(as_json: bool, wide: bool) -> None:
    """Prompts with their version count and labels."""

    async def go(reg: PromptRegistry) -> list[dict[str, Any]]:
        return [{"name": n, "versions": len(reg.versions_of(n)), "labels": reg.labels_of(n)}
                for n in reg.names()]

    rows = _with_registry(go)
    if listed(rows, as_json, "no prompts yet (keel prompts push FILE adds one)"):
        return
    print_table(console, (Column("name"), Column("versions", "right"),
                          Column("labels", flex=True)), [
        [r["name"], str(r["versions"]),
         ", ".join(f"{k}={v}" for k, v in sorted(r["labels"].items())) or "-"]
        for r in rows], wide=wide)


@prompts.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
def show(ref: str, as_json: bool) -> None:
    """One version: name, name@3 or name@production."""

    async def go(reg: PromptRegistry) -> dict[str, Any]:
        v = reg.resolve(ref)
        return v.public(reg.labels_for(v))

    data = _with_registry(go)
    if as_json:
        click.echo(orjson.dumps(data).decode())
        return
    console.print(f"[bold]{data['name']}@{data['version']}[/bold]  labels: "
                  f"{', '.join(data['labels'])}  hash: {data['content_hash'][:12]}  "
                  f"by {data['author'] or '-'}: {data['message'] or ''}")
    body = {k: data[k] for k in ("model", "params", "messages", "tools", "response_format")
            if k in data}
    console.print(Syntax(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), "yaml"))


@prompts.command("diff")
@click.argument("ref_a")
@click.argument("ref_b")
def diff(ref_a: str, ref_b: str) -> None:
    """Unified diff between two versions (e.g. name@1 name@3)."""

    async def go(reg: PromptRegistry) -> str:
        return reg.diff(ref_a, ref_b)

    text = _with_registry(go)
    click.echo(text if text else "no differences")


@prompts.command("label")
@click.argument("ref")
@click.argument("label")
@click.option("--reason", default=None)
def label(ref: str, label: str, reason: str | None) -> None:
    """Point LABEL at REF (name@3), e.g. `keel prompts label support-reply@3 production`."""

    async def go(reg: PromptRegistry) -> tuple[int | None, int]:
        return await reg.set_label(ref, label, actor=_actor(None), reason=reason)

    old, new = _with_registry(go)
    console.print(f"{ref.split('@')[0]}@{label}: {old if old is not None else '-'} -> {new}")


@prompts.command("rollback")
@click.argument("name")
@click.argument("label")
@click.option("--reason", default=None)
def rollback(name: str, label: str, reason: str | None) -> None:
    """Move LABEL back to the version it pointed to before its last move (recorded)."""

    async def go(reg: PromptRegistry) -> tuple[int, int]:
        return await reg.rollback(name, label, actor=_actor(None), reason=reason)

    was, now = _with_registry(go)
    console.print(f"rolled back {name}@{label}: {was} -> {now}")
