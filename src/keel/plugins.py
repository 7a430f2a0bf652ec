"""What keel's plugin registries share: a registry of named things that keel's built-ins and
installed distributions both fill, the config errors it reports, and a strict reader for one
entry's options.

Provider kinds (:mod:`keel.gateway.providers`), eval scorer types (:mod:`keel.evals.scorers`),
guard scanner types (:mod:`keel.guard.scanners`) and injection classifier backends are each a
:class:`Registry`. Built-ins register themselves with the registry's decorator when their
package is imported; another distribution adds names through an entry point group::

    [project.entry-points."keel.scanners"]
    shout = "keel_acme.scanners:ShoutScanner"

The entry point's name is the name it adds (a scanner type, a provider kind); its object is
what the registry holds (a scanner factory, a provider class). A registry reads its group
(:func:`importlib.metadata.entry_points`) once, the first time it is consulted and after its
built-ins are registered; that reads names only. A plugin's object is imported the first time
a config names it, once. A plugin that cannot be imported or is not what its group takes, and
a name that a built-in or another distribution already has, is a :class:`PluginError` naming
the distribution and the entry point: a plugin never replaces a built-in.

:class:`DeclaredNames` answers which names a registry has without importing even its
built-ins: the built-ins' names are given, the plugins' read from the group. A command that
only checks names (``keel config check`` checking provider kinds) uses it, so that it
imports no provider adapter.

A :class:`FactoryRegistry` holds factories (callables taking an entry's config mapping) and
turns a bad entry into a :class:`LocatedConfigError` (each package has its own subclass)
naming the entry, the key and the fix. :class:`StrictOptions` is the base of each package's
``Options``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar, Generic, TypeVar, cast

from keel.errors import ConfigError

T = TypeVar("T")
V = TypeVar("V")


class LocatedConfigError(ConfigError):
    """A config entry that cannot be used; the message names where, which key and the fix.

    ``key`` is the offending option (``None`` for the entry as a whole); ``detail`` is the
    message without the location prefix; the message is ``"where.key: detail"``.
    """

    def __init__(self, detail: str, *, key: str | None = None, where: str | None = None) -> None:
        self.key = key
        self.detail = detail
        self.where = where
        location = where or ""
        if key:
            location = f"{location}.{key}" if location else key
        super().__init__(f"{location}: {detail}" if location else detail, param=key)


class PluginError(ConfigError):
    """An installed plugin that cannot be used: its import failed, its object is not what its
    group takes, or its name is taken. The message names the distribution and the entry point
    (one problem a line) and the fix."""


@dataclass(frozen=True, slots=True)
class PluginSource:
    """Where a plugin's name comes from: one entry point of one installed distribution."""

    name: str
    value: str  # "module:attribute"
    group: str
    dist_name: str  # "" when the entry point's distribution is not known
    dist_version: str = ""

    @classmethod
    def of(cls, ep: EntryPoint) -> PluginSource:
        dist = getattr(ep, "dist", None)
        if dist is None:
            return cls(ep.name, ep.value, ep.group, "")
        return cls(ep.name, ep.value, ep.group, str(dist.name), str(dist.version))

    @property
    def distribution(self) -> str:
        """The distribution, for messages: ``keel-acme 0.1.0``."""
        if not self.dist_name:
            return "an unknown distribution"
        return f"{self.dist_name} {self.dist_version}".strip()

    def describe(self) -> str:
        return (f"entry point '{self.name} = {self.value}' (group {self.group}) of "
                f"distribution {self.distribution}")


class Registry(Generic[T]):
    """Things registered by name: keel's built-ins, and plugins found in the entry point
    group ``group``.

    ``noun`` names what is registered and ``what`` its name in messages (``"scanner"``,
    ``"type"``: "unknown scanner type 'x'"); ``load`` imports the built-ins, which register
    themselves; ``accept(name, item)`` turns what a name is registered with into what the
    registry holds, raising ``TypeError`` (saying what it must be) when it does not fit.
    """

    def __init__(self, noun: str, group: str, load: Callable[[], None],
                 accept: Callable[[str, object], T], *, what: str = "type") -> None:
        self.noun = noun
        self.what = what
        self.group = group
        self.load = load
        self._accept = accept
        # what each name resolves to: built-ins, names registered in code, plugins imported
        self.entries: dict[str, T] = {}
        self._plugins: dict[str, EntryPoint] | None = None  # None: the group not read yet
        self._sources: dict[str, PluginSource] = {}
        self._broken: dict[str, PluginError] = {}  # plugins that failed to load, by name
        self._discovery_error: PluginError | None = None

    def register(self, name: str) -> Callable[[V], V]:
        """A decorator registering a built-in (or a name defined in code) under ``name``.

        Registering a name again in code replaces the earlier entry; a plugin installed as a
        distribution never replaces one (see :meth:`discover`).
        """

        def deco(item: V) -> V:
            self.entries[name] = self._accept(name, item)
            return item

        return deco

    def discover(self) -> None:
        """Register the built-ins and read the entry point group, once (names only; nothing is
        imported). Raises a PluginError listing every name that clashes."""
        if self._discovery_error is not None:
            raise self._discovery_error
        if self._plugins is not None:
            return
        self.load()
        try:
            found = read_group(self.noun, self.what, self.group, self.entries)
        except PluginError as exc:
            self._discovery_error = exc
            raise
        self._sources = {name: source for name, (_, source) in found.items()}
        self._plugins = {name: ep for name, (ep, _) in found.items()}

    def names(self) -> list[str]:
        """Every name, built-in or plugin, sorted."""
        self.discover()
        return sorted({*self.entries, *(self._plugins or {})})

    def plugins(self) -> list[PluginSource]:
        """Where each plugin name comes from (installed, whether imported yet or not), by name."""
        self.discover()
        return [self._sources[name] for name in sorted(self._sources)]

    def source(self, name: str) -> PluginSource | None:
        """Where a plugin's name comes from; None for a built-in (or an unknown name)."""
        self.discover()
        return self._sources.get(name)

    def get(self, name: str) -> T | None:
        """What ``name`` resolves to (a plugin is imported the first time), or None when
        nothing has that name. Raises a PluginError for a plugin that cannot be used."""
        self.discover()
        item = self.entries.get(name)
        if item is not None:
            return item
        ep = (self._plugins or {}).get(name)
        if ep is None:
            return None
        if name in self._broken:
            raise self._broken[name]
        source = self._sources[name]
        try:
            loaded = ep.load()
        except Exception as exc:  # whatever the plugin's import raises, it is reported
            problem = (f"could not be imported: {source.describe()} raised "
                       f"{type(exc).__name__}: {exc}; fix or reinstall {source.dist_name}, "
                       "or uninstall it")
        else:
            try:
                item = self._accept(name, loaded)
            except TypeError as exc:
                problem = (f"is not usable: {source.describe()} gives {exc}; fix "
                           f"{source.dist_name}, or uninstall it")
            else:
                self.entries[name] = item
                return item
        self._broken[name] = PluginError(f"the {self.noun} plugin '{name}' {problem}")
        raise self._broken[name]

    def unknown(self, name: object) -> str:
        """The message for a name nothing has: the closest known name, and every known one."""
        return unknown_message(self.noun, self.what, self.group, name, self.names())


def read_group(noun: str, what: str, group: str, taken: Collection[str]
               ) -> dict[str, tuple[EntryPoint, PluginSource]]:
    """The entry points of ``group`` by name, each with where it comes from (names only;
    nothing is imported). A name in ``taken`` (the built-ins') or declared twice is a
    PluginError listing every such name, naming ``noun`` and ``what`` as a registry does."""
    found: dict[str, tuple[EntryPoint, PluginSource]] = {}
    problems: list[str] = []
    for ep in entry_points(group=group):
        source = PluginSource.of(ep)
        if ep.name in taken:
            problems.append(
                f"the {noun} plugin '{ep.name}' has the name of keel's built-in "
                f"{noun} {what} '{ep.name}': {source.describe()}; a plugin "
                f"cannot replace a built-in, so rename the entry point or uninstall "
                f"{source.dist_name}")
        elif ep.name in found:
            first = found[ep.name][1]
            problems.append(
                f"the {noun} plugin '{ep.name}' is declared twice: "
                f"{first.describe()}, and {source.describe()}; uninstall one of "
                f"{first.dist_name} and {source.dist_name}")
        else:
            found[ep.name] = (ep, source)
    if problems:
        raise PluginError("\n".join(problems))
    return found


def unknown_message(noun: str, what: str, group: str, name: object, known: list[str]) -> str:
    """The message for a name none of ``known`` is: the closest, else every one and where a
    plugin would add it."""
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    more = "" if close else f" (a plugin adds one through the entry point group {group})"
    return (f"unknown {noun} {what} '{name}'; {hint}known {what}s: "
            f"{', '.join(known) or 'none'}{more}")


@dataclass(frozen=True, slots=True)
class DeclaredNames:
    """The names a registry has, known without importing anything: ``builtins`` as declared
    by whoever asks, and the plugins of ``group`` as installed. Its messages are the
    registry's own (:meth:`Registry.unknown`, the PluginError of a clash)."""

    noun: str
    group: str
    builtins: frozenset[str]
    plugins: Mapping[str, PluginSource] = field(default_factory=dict)
    what: str = "type"

    @classmethod
    def read(cls, noun: str, group: str, builtins: Iterable[str], *,
             what: str = "type") -> DeclaredNames:
        """Read ``group``'s entry point names; a clash is a PluginError (see read_group)."""
        names = frozenset(builtins)
        found = read_group(noun, what, group, names)
        return cls(noun, group, names, {n: source for n, (_, source) in found.items()}, what)

    def names(self) -> list[str]:
        """Every name, built-in or plugin, sorted."""
        return sorted({*self.builtins, *self.plugins})

    def unknown(self, name: object) -> str:
        return unknown_message(self.noun, self.what, self.group, name, self.names())


class FactoryRegistry(Registry[Callable[[dict[str, Any]], T]]):
    """Factories (callables taking an entry's config mapping) registered by type name, built
    from config entries like ``{type: <name>, ...}``.

    ``error`` is the error raised for a bad entry (and the one a factory raises to report a
    bad option); ``example`` is an entry shown when one is not a mapping; ``type_example``,
    when set, is a type shown when ``type:`` is missing.
    """

    def __init__(self, noun: str, group: str, error: type[LocatedConfigError],
                 load: Callable[[], None], example: str,
                 type_example: str | None = None) -> None:
        super().__init__(noun, group, load, self._callable)
        self.error = error
        self.example = example
        self.type_example = type_example

    def _callable(self, name: str, item: object) -> Callable[[dict[str, Any]], T]:
        if not callable(item):
            raise TypeError(f"{item!r}, not a {self.noun} factory (a callable taking the "
                            "entry's config mapping, such as a class)")
        return cast(Callable[[dict[str, Any]], T], item)

    def factory(self, type_name: str, key: str = "type",
                where: str | None = None) -> Callable[[dict[str, Any]], T]:
        """The factory of ``type_name``; an unknown type (or a plugin that cannot be used) is
        ``error`` at ``where.key``."""
        try:
            factory = self.get(type_name)
        except PluginError as exc:
            raise self.error(exc.message, key=key, where=where) from None
        if factory is None:
            raise self.error(self.unknown(type_name), key=key, where=where)
        return factory

    def build(self, config: dict[str, Any], where: str) -> T:
        """Build one from its config mapping (``{type: ..., ...}``); ``where`` names the entry."""
        error = self.error
        if not isinstance(config, dict):
            raise error(f"must be a mapping with a type:, e.g. {self.example}", where=where)
        type_name = config.get("type")
        if not isinstance(type_name, str) or not type_name:
            hint = f"; e.g. type: {self.type_example}" if self.type_example else ""
            raise error(f"required: one of {', '.join(self.names())}{hint}", key="type",
                        where=where)
        factory = self.factory(type_name, where=where)
        try:
            return factory(dict(config))
        except error as exc:
            raise error(exc.detail, key=exc.key, where=where) from None
        except Exception as exc:  # a plugin factory that fails in its own way
            raise error(f"{self.noun} type '{type_name}' could not be built: "
                        f"{type(exc).__name__}: {exc}", where=where) from exc


class StrictOptions:
    """The options of one entry, read strictly: an unknown key is a config error (a typo never
    becomes a silently ignored setting), and every getter raises ``error`` naming the key.

    Subclasses set ``error``, ``common`` (the keys every entry may have besides its own),
    ``name_help`` (the fix for a bad ``name:``; ``{type}`` stands for the entry's type) and
    ``range_example`` (whether an out-of-range number's message shows an example too), and add
    the getters their entries need.
    """

    error: ClassVar[type[LocatedConfigError]]
    common: ClassVar[tuple[str, ...]] = ("type", "name")
    name_help: ClassVar[str]
    range_example: ClassVar[bool] = False

    def __init__(self, config: dict[str, Any], allowed: Iterable[str]) -> None:
        self.config = config
        self.type = str(config.get("type", ""))
        known = (*self.common, *allowed)
        unknown = sorted(str(k) for k in set(config) - set(known))
        if unknown:
            raise self.error(f"unknown option for '{self.type}'; allowed: {', '.join(known)}",
                             key=unknown[0])
        name = config.get("name", self.type)
        if not isinstance(name, str) or not name:
            raise self.error(self.name_help.format(type=self.type), key="name")
        self.name = name

    def has(self, key: str) -> bool:
        return self.config.get(key) is not None

    def flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"must be true or false, got {value!r}", key=key)
        return value

    def number(self, key: str, example: str, default: float | None = None,
               minimum: float | None = None, maximum: float | None = None) -> float:
        value = self.config.get(key, default)
        if value is None:
            raise self.error(f"required; e.g. {key}: {example}", key=key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"must be a number, got {value!r}; e.g. {key}: {example}", key=key)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            lo = "-inf" if minimum is None else f"{minimum:g}"
            hi = "inf" if maximum is None else f"{maximum:g}"
            hint = f"; e.g. {key}: {example}" if self.range_example else ""
            raise self.error(f"must be between {lo} and {hi}, got {value!r}{hint}", key=key)
        return float(value)
