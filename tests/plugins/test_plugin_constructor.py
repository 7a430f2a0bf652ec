"""A plugin provider whose constructor raises when `keel serve` composes keel: one config error
line naming the file, the provider, the plugin's distribution and the exception, then "keel did
not start." and exit 2, as for any config error; no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.plugins.test_plugin_distribution import keel
from tests.plugins.wheel import install_plugin

FRAGILE = '''
from keel.gateway.providers.base import Provider


class Fragile(Provider):
    def __init__(self, config):
        raise RuntimeError("no credentials file at /etc/fragile.json")

    async def chat(self, body):
        raise NotImplementedError

    def chat_stream(self, body):
        raise NotImplementedError
'''


def test_keel_serve_refuses_a_plugin_provider_whose_constructor_raises_in_one_line(
        tmp_path: Path) -> None:
    site = install_plugin(tmp_path, "keel-fragile", {"keel_fragile.py": FRAGILE},
                          {"keel.providers": {"fragile": "keel_fragile:Fragile"}})
    cfg = tmp_path / "keel.yaml"
    cfg.write_text("providers:\n  - {name: f, kind: fragile}\n"
                   "models:\n  - {name: m, provider: f}\n")
    check = keel(tmp_path, site, "config", "check", "--config", str(cfg))
    assert check.returncode == 0, check.stderr  # the kind is known: only building it fails

    served = keel(tmp_path, site, "serve", "--config", str(cfg), "--port", "0")
    assert served.returncode == 2
    assert "Traceback" not in served.stderr
    assert served.stderr.splitlines() == [
        f"config error: {cfg}: provider 'f' (kind fragile, the entry point 'fragile = "
        "keel_fragile:Fragile' (group keel.providers) of distribution keel-fragile 0.1.0) "
        "could not be built: RuntimeError: no credentials file at /etc/fragile.json",
        "keel did not start.",
    ]
