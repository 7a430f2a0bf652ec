"""keel.plugins.Registry against real installed distributions (pip-installed wheels put on
sys.path, found by importlib.metadata): names read once without importing, a plugin
imported on first use and once, broken plugins reported the same way each time."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.plugins import FactoryRegistry, LocatedConfigError, PluginError, Registry
from tests.plugins.wheel import install_plugin

GROUP = "keel.test_widgets"
WIDGETS = """
IMPORTS = []
IMPORTS.append(1)


def gear(config):
    return ("gear", config)


def sprocket(config):
    return ("sprocket", config)
"""


def builtin(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("builtin", config)


class WidgetError(LocatedConfigError):
    pass


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Put an installed site directory on sys.path for this test; forget its modules after."""
    before = set(sys.modules)
    yield lambda site: monkeypatch.syspath_prepend(str(site))
    for name in set(sys.modules) - before:
        if name.startswith("keel_test_"):
            del sys.modules[name]


def widgets(loads: list[int] | None = None) -> FactoryRegistry[tuple[str, dict[str, Any]]]:
    def load() -> None:
        if loads is not None:
            loads.append(1)
        reg.register("anvil")(builtin)

    reg: FactoryRegistry[tuple[str, dict[str, Any]]] = FactoryRegistry(
        "widget", GROUP, WidgetError, load, example="{type: anvil}")
    return reg


def test_names_are_read_without_importing_and_a_plugin_is_imported_once_on_use(
        tmp_path: Path, on_path: Callable[[Path], None]) -> None:
    on_path(install_plugin(tmp_path, "keel-test-widgets", {"keel_test_widgets.py": WIDGETS},
                           {GROUP: {"gear": "keel_test_widgets:gear",
                                    "sprocket": "keel_test_widgets:sprocket"}}))
    loads: list[int] = []
    reg = widgets(loads)
    assert reg.names() == ["anvil", "gear", "sprocket"]
    assert "keel_test_widgets" not in sys.modules
    source = reg.source("gear")
    assert source is not None and source.distribution == "keel-test-widgets 0.1.0"
    assert reg.source("anvil") is None

    assert reg.build({"type": "gear", "size": 3}, "widgets[0]") == (
        "gear", {"type": "gear", "size": 3})
    module = sys.modules["keel_test_widgets"]
    assert reg.get("gear") is module.gear
    assert reg.build({"type": "sprocket"}, "widgets[1]")[0] == "sprocket"
    assert module.IMPORTS == [1]
    reg.names()
    assert loads == [1]  # built-ins loaded, and the group read, once


def test_an_unknown_name_gets_the_closest_of_builtins_and_plugins(
        tmp_path: Path, on_path: Callable[[Path], None]) -> None:
    on_path(install_plugin(tmp_path, "keel-test-widgets", {"keel_test_widgets.py": WIDGETS},
                           {GROUP: {"sprocket": "keel_test_widgets:sprocket"}}))
    reg = widgets()
    with pytest.raises(WidgetError) as info:
        reg.build({"type": "sprockett"}, "widgets[2]")
    assert info.value.message == ("widgets[2].type: unknown widget type 'sprockett'; did you "
                                  "mean 'sprocket'? known types: anvil, sprocket")
    with pytest.raises(WidgetError) as info:
        reg.build({"type": "zzz"}, "widgets[0]")
    assert info.value.message.endswith(
        "known types: anvil, sprocket (a plugin adds one through the entry point group "
        "keel.test_widgets)")


def test_a_failed_import_is_the_same_error_every_time(
        tmp_path: Path, on_path: Callable[[Path], None]) -> None:
    on_path(install_plugin(tmp_path, "keel-test-broken",
                           {"keel_test_broken.py": "raise ValueError('bad model file')\n"},
                           {GROUP: {"cog": "keel_test_broken:cog"}}))
    reg = widgets()
    assert reg.names() == ["anvil", "cog"]
    with pytest.raises(PluginError) as first:
        reg.get("cog")
    assert first.value.message == (
        "the widget plugin 'cog' could not be imported: entry point 'cog = keel_test_broken:"
        "cog' (group keel.test_widgets) of distribution keel-test-broken 0.1.0 raised "
        "ValueError: bad model file; fix or reinstall keel-test-broken, or uninstall it")
    with pytest.raises(PluginError) as again:
        reg.get("cog")
    assert again.value is first.value
    assert reg.get("anvil") is builtin  # the others still work


def test_a_clash_with_a_builtin_keeps_the_builtin_and_fails_every_lookup(
        tmp_path: Path, on_path: Callable[[Path], None]) -> None:
    on_path(install_plugin(tmp_path, "keel-test-clash", {"keel_test_clash.py": WIDGETS},
                           {GROUP: {"anvil": "keel_test_clash:gear"}}))
    reg = widgets()
    for lookup in (reg.names, lambda: reg.get("anvil")):
        with pytest.raises(PluginError, match="has the name of keel's built-in widget type "
                                              "'anvil'"):
            lookup()
    assert reg.entries["anvil"] is builtin
    assert "keel_test_clash" not in sys.modules


def test_an_object_the_registry_does_not_take_is_refused(
        tmp_path: Path, on_path: Callable[[Path], None]) -> None:
    on_path(install_plugin(tmp_path, "keel-test-widgets", {"keel_test_widgets.py": WIDGETS},
                           {GROUP: {"list": "keel_test_widgets:IMPORTS"}}))
    reg = widgets()
    with pytest.raises(WidgetError) as info:
        reg.build({"type": "list"}, "widgets[0]")
    assert info.value.key == "type"
    assert "is not usable: entry point 'list = keel_test_widgets:IMPORTS'" in info.value.detail
    assert "[1], not a widget factory" in info.value.detail


def test_a_registry_of_classes_checks_what_it_is_given() -> None:
    class Base:
        pass

    def accept(name: str, item: object) -> type[Base]:
        if not (isinstance(item, type) and issubclass(item, Base)):
            raise TypeError(f"{item!r}, which is not a Base")
        return item

    reg: Registry[type[Base]] = Registry("base", GROUP + "_none", lambda: None, accept)

    @reg.register("ok")
    class Ok(Base):
        pass

    assert reg.get("ok") is Ok and reg.get("missing") is None
    with pytest.raises(TypeError, match="which is not a Base"):
        reg.register("bad")(int)
