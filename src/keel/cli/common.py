"""What the commands share: finding the config and the store (keel.locations), loading the
config with every problem reported, and running a coroutine against the store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import yaml

from keel.cli.kinds import kind_problems
from keel.config import KeelConfig, Settings, config_warnings, default_config, load_config
from keel.errors import ConfigError, KeelError
from keel.guard.policy import config_policies
from keel.locations import Locations, locate
from keel.plugins import PluginError
from keel.store import Store

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

config_option: Callable[[F], F] = click.option(
    "--config", "config_path", envvar="KEEL_CONFIG", default=None, metavar="FILE",
    help="YAML config file [default: keel.yaml in this directory or the nearest parent "
         "that has one, else ~/.config/keel/keel.yaml, else the built-in mock models].")


def _context_config() -> str | None:
    """The ``--config`` of the command being run, when it has one."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        value = ctx.params.get("config_path")
        if value:
            return str(value)
        ctx = ctx.parent
    return None


def cli_settings(config_path: str | None = None, **overrides: Any) -> Settings:
    """The settings of a command: ``KEEL_*``, with the config file and data directory found
    as keel.locations describes (``config_path``, else the command's ``--config``)."""
    config_path = config_path or _context_config()
    clean: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if config_path:
        clean["config"] = config_path
    return Settings(**clean)


def refuse_missing_extras(settings: Settings) -> None:
    """Exit 2 with one line for each setting whose optional package is not installed, naming
    the extra that installs it (keel.config.extras)."""
    from keel.config.extras import missing_extras  # imports what the settings ask for

    problems = missing_extras(settings)
    for line in problems:
        click.echo(f"error: {line}", err=True)
    if problems:
        sys.exit(2)


def locations(config_path: str | None = None) -> Locations:
    """Where the config and data directory were found, and why (for messages)."""
    return locate(config_path or _context_config())


def store_source(settings: Settings, found: Locations) -> str:
    """Why this store: KEEL_DATABASE_URL, or why its data directory."""
    return "KEEL_DATABASE_URL" if settings.database_url else found.data_dir_from


def cli_config(config_path: str | None = None, *, warn: bool = True,
               refused: str | None = None) -> KeelConfig:
    """The config file found for this command, validated; every problem on stderr (then
    ``refused``, if given) and exit 2 when it is not usable. A file named by ``--config`` or
    ``KEEL_CONFIG`` must exist. With ``warn``, what is valid but suspect goes to stderr."""
    config_path = config_path or _context_config()
    found = locations(config_path)
    named = config_path is not None or found.config_from == "KEEL_CONFIG"
    path = str(found.config) if found.config else None
    problems: list[str] = []
    try:
        config = load_config(found.config, required=named) if found.config else default_config()
    except ConfigError as exc:
        problems = exc.message.splitlines()
        if path is not None:
            problems += _written_provider_problems(path)
    else:
        try:
            compile_config(config, path)
        except ConfigError as exc:
            problems = exc.message.splitlines()
    if problems:
        for line in problems:
            click.echo(f"config error: {line}", err=True)
        if refused:
            click.echo(refused, err=True)
        sys.exit(2)
    if warn and found.config is not None:
        for warning in config_warnings(config):
            click.echo(f"warning: {found.config}: {warning}", err=True)
    return config


def compile_config(config: KeelConfig, path: str | None) -> None:
    """What the composition root checks of a loaded config, as ``keel serve`` will compose it:
    every provider's kind (a built-in or an installed plugin) and options, without importing
    the provider adapters (keel.cli.kinds), and the guard policies (scanners built, schema
    files read). One ConfigError with every problem of both, each line naming the file
    ``path``."""
    problems: list[str] = []
    for check in (_config_kinds, config_policies):
        try:
            check(config, path)
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError("\n".join(problems))


def _config_kinds(config: KeelConfig, path: str | None) -> None:
    """A ConfigError naming ``path`` and every provider entry's problem (kind_problems);
    plugins installed with clashing names are a PluginError of their own (not the file's
    fault)."""
    problems = kind_problems([{"kind": p.kind, "options": p.options} for p in config.providers])
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" if path else p for p in problems))


def _written_provider_problems(path: str) -> list[str]:
    """The provider kinds and options of a file the loader refused (so nothing could be
    compiled), read as written, so that one run reports them with the loader's problems;
    [] when the file is not even a mapping of YAML."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    entries = data.get("providers") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    try:
        problems = kind_problems([e if isinstance(e, dict) else {} for e in entries])
    except PluginError as exc:
        return exc.message.splitlines()
    return [f"{path}: {p}" for p in problems]


def _announce_new_store(settings: Settings) -> None:
    """On stderr: a new, empty store was just created in a place found rather than named
    (KEEL_DATABASE_URL, KEEL_DATA_DIR), where, why, and with which config."""
    found = locations()
    if settings.database_url or found.data_dir_from == "KEEL_DATA_DIR":
        return
    click.echo(f"keel: created a new store: {settings.describe_store()} "
               f"({found.data_dir_from})", err=True)
    click.echo(f"keel: config: {found.describe_config()}", err=True)


def with_store(fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store (KEEL_DATABASE_URL, else keel.db in the data directory found as
    keel.locations describes), migrate it, run ``fn``, close. A store that did not exist yet
    is announced on stderr. A KeelError exits 2 with its message."""
    settings = cli_settings()

    async def go() -> T:
        store = Store(settings.resolved_database_url())
        try:
            if await store.current_revision() is None:
                await store.upgrade()
                _announce_new_store(settings)
            else:
                await store.upgrade()
            return await fn(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(go())
    except KeelError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except OSError as exc:  # a report path that cannot be written, an unreachable store...
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def listed(rows: Sequence[Any], as_json: bool, empty: str) -> bool:
    """The output of a listing command that needs no table: with ``--json`` one JSON object
    per line; with no rows, ``empty``. True when that was all there was to print."""
    if as_json:
        for r in rows:
            click.echo(orjson.dumps(r).decode())
        return True
    if not rows:
        click.echo(empty)
        return True
    return False
