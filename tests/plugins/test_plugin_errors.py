"""Installed plugins that cannot be used: a name that is a built-in's (never a silent
replacement), an import that fails, an object that is not what its group takes. Each is a
config error naming the distribution and the entry point, from `keel config check` and
`keel serve` run with the distribution installed."""

from __future__ import annotations

from pathlib import Path

from tests.plugins.test_plugin_distribution import config_check, errors, keel
from tests.plugins.wheel import install_plugin

# a module that must never be imported: discovery reads names only
IMPOSTOR = 'raise RuntimeError("keel imported keel_impostor")\n'
BROKEN = "import keel_missing_dependency  # not installed\n"
NOT_A_PROVIDER = "def provider(config):\n    return None\n"


def test_a_plugin_named_like_a_builtin_is_refused_and_never_replaces_it(
        tmp_path: Path) -> None:
    site = install_plugin(tmp_path, "keel-impostor", {"keel_impostor.py": IMPOSTOR},
                          {"keel.providers": {"mock": "keel_impostor:Mock"}})
    done = config_check(tmp_path, site, "providers:\n  - {name: a, kind: mock}\n"
                                        "models:\n  - {name: m, provider: a}\n")
    assert done.returncode == 2
    # a problem of the installation, not of the file: no file named
    assert [line for line in done.stderr.splitlines() if line.startswith("config error")] == [
        "config error: the provider plugin 'mock' has the name of keel's built-in provider kind 'mock': "
        "entry point 'mock = keel_impostor:Mock' (group keel.providers) of distribution "
        "keel-impostor 0.1.0; a plugin cannot replace a built-in, so rename the entry point "
        "or uninstall keel-impostor"]
    assert "keel imported keel_impostor" not in done.stderr

    cfg = tmp_path / "keel.yaml"
    served = keel(tmp_path, site, "serve", "--config", str(cfg), "--port", "0")
    assert served.returncode == 2
    assert "the provider plugin 'mock' has the name of keel's built-in" in served.stderr
    assert served.stderr.rstrip().endswith("keel did not start.")


def test_a_name_two_distributions_declare_is_refused_naming_both(tmp_path: Path) -> None:
    one = install_plugin(tmp_path, "keel-one", {"keel_one.py": IMPOSTOR},
                         {"keel.scanners": {"loud": "keel_one:Loud"}})
    two = install_plugin(tmp_path, "keel-two", {"keel_two.py": IMPOSTOR},
                         {"keel.scanners": {"loud": "keel_two:Loud"}}, version="2.0")
    done = config_check(tmp_path, Path(f"{one}:{two}"), """
providers:
  - {name: a, kind: mock}
policies:
  - {name: p, features: ['*'], input: [{scanner: loud, action: flag}]}
""")
    assert done.returncode == 2
    (problem,) = errors(done, tmp_path / "keel.yaml")
    assert problem == (
        "policies[0].input[0].scanner: the scanner plugin 'loud' is declared twice: entry "
        "point 'loud = keel_one:Loud' (group keel.scanners) of distribution keel-one 0.1.0, "
        "and entry point 'loud = keel_two:Loud' (group keel.scanners) of distribution "
        "keel-two 2.0; uninstall one of keel-one and keel-two")


def test_a_plugin_whose_import_fails_names_its_distribution_entry_point_and_error(
        tmp_path: Path) -> None:
    site = install_plugin(tmp_path, "keel-broken", {"keel_broken.py": BROKEN}, {
        "keel.providers": {"broken": "keel_broken:Provider"},
        "keel.scanners": {"broken-scan": "keel_broken:Scanner"}})
    done = config_check(tmp_path, site, """
providers:
  - {name: a, kind: broken}
models:
  - {name: m, provider: a}
policies:
  - {name: p, features: ['*'], input: [{scanner: broken-scan, action: flag}]}
""")
    assert done.returncode == 2
    assert errors(done, tmp_path / "keel.yaml") == [
        "providers[0].kind: the provider plugin 'broken' could not be imported: entry point "
        "'broken = keel_broken:Provider' (group keel.providers) of distribution keel-broken "
        "0.1.0 raised ModuleNotFoundError: No module named 'keel_missing_dependency'; fix or "
        "reinstall keel-broken, or uninstall it",
        "policies[0].input[0].scanner: the scanner plugin 'broken-scan' could not be "
        "imported: entry point 'broken-scan = keel_broken:Scanner' (group keel.scanners) of "
        "distribution keel-broken 0.1.0 raised ModuleNotFoundError: No module named "
        "'keel_missing_dependency'; fix or reinstall keel-broken, or uninstall it",
    ]
    assert "Traceback" not in done.stderr


def test_a_provider_plugin_that_is_not_a_provider_class_is_refused(tmp_path: Path) -> None:
    site = install_plugin(tmp_path, "keel-odd", {"keel_odd.py": NOT_A_PROVIDER},
                          {"keel.providers": {"odd": "keel_odd:provider"}})
    done = config_check(tmp_path, site, "providers:\n  - {name: a, kind: odd}\n"
                                        "models:\n  - {name: m, provider: a}\n")
    assert done.returncode == 2
    (problem,) = errors(done, tmp_path / "keel.yaml")
    assert problem.startswith(
        "providers[0].kind: the provider plugin 'odd' is not usable: entry point 'odd = "
        "keel_odd:provider' (group keel.providers) of distribution keel-odd 0.1.0 gives "
        "<function provider at ")
    assert problem.endswith(">, which is not a subclass of keel.gateway.providers.base."
                            "Provider; fix keel-odd, or uninstall it")
