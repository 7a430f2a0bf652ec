"""``keel config``: which config file and store a command would use, and whether the config
is valid, without serving."""

from __future__ import annotations

from typing import Any

import click

from keel.cli.common import (
    cli_config,
    cli_settings,
    config_option,
    locations,
    refuse_missing_extras,
    store_source,
)
from keel.cli.kinds import provider_kinds
from keel.config import KeelConfig, config_warnings
from keel.evals.scorers.base import SCORERS
from keel.guard.scanners.base import SCANNERS
from keel.guard.scanners.injection.classifiers import CLASSIFIERS
from keel.monitor.alerts import rules_for
from keel.plugins import DeclaredNames, PluginError, Registry


@click.group("config")
def config_group() -> None:
    """The YAML config file: which one keel uses, and whether it is valid."""


def _provider(kinds: DeclaredNames, name: str, kind: str) -> str:
    source = kinds.plugins.get(kind)
    return f"{name} ({kind} from {source.distribution})" if source else name


# the provider kinds are read as DeclaredNames (keel.cli.kinds): no adapter is imported
REGISTRIES: tuple[Registry[Any], ...] = (SCANNERS, SCORERS, CLASSIFIERS)


def _plugins(kinds: DeclaredNames) -> tuple[list[str], list[str]]:
    """The plugins installed for each registry (names only; none is imported), and the
    problems of registries this config does not use (a clash of names): those fail later,
    when something uses them (an eval suite's scorers, say)."""
    found = [f"provider {kinds.plugins[n].name} from {kinds.plugins[n].distribution}"
             for n in sorted(kinds.plugins)]
    problems: list[str] = []
    for registry in REGISTRIES:
        try:
            found += [f"{registry.noun} {s.name} from {s.distribution}"
                      for s in registry.plugins()]
        except PluginError as exc:
            problems += exc.message.splitlines()
    return found, problems


def _counts(config: KeelConfig, kinds: DeclaredNames) -> list[tuple[str, int, str]]:
    chat = [m.name for m in config.models if m.kind == "chat"]
    embedding = [m.name for m in config.models if m.kind == "embedding"]
    return [
        ("providers", len(config.providers),
         ", ".join(_provider(kinds, p.name, p.kind) for p in config.providers)),
        ("models", len(config.models),
         ", ".join(chat + [f"{n} (embedding)" for n in embedding])),
        ("routes", len(config.routes), ", ".join(r.name for r in config.routes)),
        ("limits", len(config.limits), ""),
        ("budgets", len(config.budgets),
         ", ".join(f"{b.scope} {b.name} ${b.usd:g}/{b.period}" for b in config.budgets)),
        ("features", len(config.features), ", ".join(f.name for f in config.features)),
        ("policies", len(config.policies), ", ".join(p.name for p in config.policies)),
        ("scheduled suites", len(config.evals.schedule),
         ", ".join(s.suite for s in config.evals.schedule)),
        ("alert rules", len(rules := rules_for(config.alerts)),
         _short([r.name for r in rules])),
        ("receivers", len(config.receivers),
         ", ".join(f"{r.name} ({r.kind})" for r in config.receivers)),
    ]


def _short(names: list[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


@config_group.command("check")
@config_option
def check_cmd(config_path: str | None) -> None:
    """Validate the config file (every problem at once) and say what it configures: exit 0
    when it is valid, 2 when it is not. Also shows which config file and store keel finds
    from here, and why."""
    found = locations(config_path)
    settings = cli_settings(config_path)
    click.echo(f"config: {found.describe_config()}")
    click.echo(f"store: {settings.describe_store()} ({store_source(settings, found)})")
    refuse_missing_extras(settings)
    config = cli_config(config_path, warn=False)
    kinds = provider_kinds()  # read again (cheap); cli_config refused a clash of kinds
    plugins, plugin_problems = _plugins(kinds)
    for name, n, names in [*_counts(config, kinds),
                           ("plugins", len(plugins), ", ".join(plugins))]:
        click.echo(f"{name}: {n}" + (f" ({names})" if names else ""))
    for warning in [*config_warnings(config), *plugin_problems]:
        click.echo(f"warning: {warning}", err=True)
    click.echo("config is valid")
