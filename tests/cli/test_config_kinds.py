"""`keel config check` (and every command that loads the config) checks provider kinds by
name: the built-ins' declared names and the installed plugins' entry point names, without
importing keel's provider adapters; the messages are those of the composition root's check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keel.cli.kinds import kind_problems
from keel.config import BUILTIN_PROVIDER_KINDS, PROVIDER_GROUP
from keel.gateway.providers.base import PROVIDERS, provider_problems
from tests.plugins.test_plugin_distribution import keel_env
from tests.plugins.wheel import install_acme

# keel's command, then on stderr the modules it imported that a config check must not need
KEEL_AND_IMPORTS = """
import atexit, sys

def imported():
    names = [m for m in sys.modules
             if m.startswith(("keel.gateway.providers", "aiohttp", "keel_acme"))]
    print("imported:", ",".join(sorted(names)), file=sys.stderr)

atexit.register(imported)
from keel.cli.main import main
main(prog_name="keel")
"""
BUILTINS_ONLY = """
providers:
  - {name: o, kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-test}
  - {name: a, kind: anthropic, api_key: sk-ant-test}
  - {name: g, kind: gemini, api_key: test}
  - {name: m, kind: mock}
models:
  - {name: chat, provider: m}
"""


def config_check(tmp_path: Path, site: Path | None, text: str
                 ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", KEEL_AND_IMPORTS, "config", "check", "--config", str(cfg)],
        cwd=tmp_path, env=keel_env(tmp_path, site), capture_output=True, text=True,
        timeout=120)
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("imported:")]
    return done, [m for m in line.removeprefix("imported:").strip().split(",") if m]


def test_config_check_of_builtin_kinds_imports_no_provider_adapter(tmp_path: Path) -> None:
    done, imported = config_check(tmp_path, None, BUILTINS_ONLY)
    assert done.returncode == 0, done.stderr
    assert "providers: 4 (o, a, g, m)" in done.stdout.splitlines()
    assert imported == []


def test_config_check_of_bad_builtin_kinds_imports_no_provider_adapter(tmp_path: Path) -> None:
    done, imported = config_check(tmp_path, None, """
providers:
  - {name: a, kind: opnai}
  - {name: m, kind: mock, options: {token: x}}
models:
  - {name: chat, provider: m}
""")
    assert done.returncode == 2
    cfg = tmp_path / "keel.yaml"
    assert [x for x in done.stderr.splitlines() if x.startswith("config error")] == [
        f"config error: {cfg}: providers[0].kind: unknown provider kind 'opnai'; did you mean "
        "'openai'? known kinds: anthropic, gemini, mock, openai",
        f"config error: {cfg}: providers[1].options: provider kind 'mock' takes no options "
        "(options: is for plugin providers); remove it",
    ]
    assert imported == []


def test_an_installed_plugin_the_config_does_not_name_is_listed_but_not_imported(
        tmp_path: Path) -> None:
    site = install_acme(tmp_path / "acme")
    done, imported = config_check(tmp_path, site, BUILTINS_ONLY)
    assert done.returncode == 0, done.stderr
    assert ("plugins: 3 (provider acme-echo from keel-acme 0.1.0, scanner shout from keel-acme "
            "0.1.0, scorer greeted from keel-acme 0.1.0)") in done.stdout.splitlines()
    assert imported == []


def test_the_declared_builtin_kinds_are_the_ones_the_adapters_register() -> None:
    assert PROVIDERS.group == PROVIDER_GROUP
    PROVIDERS.discover()
    assert sorted(k for k in PROVIDERS.entries if PROVIDERS.source(k) is None) == \
        sorted(BUILTIN_PROVIDER_KINDS)


@pytest.mark.parametrize("entries", [
    [{"kind": "mock"}, {"kind": "openai", "options": {}}],
    [{"kind": "mocc"}, {"kind": "gemini", "options": {"a": 1}}, {"kind": "xyz-unheard-of"}],
    [{"kind": 7}, {"kind": "env:KIND"}, {"kind": "anthropic", "options": "no"}, {}],
])
def test_the_check_by_name_says_what_the_composition_roots_check_says(
        entries: list[dict[str, Any]]) -> None:
    assert kind_problems(entries) == provider_problems(entries)
