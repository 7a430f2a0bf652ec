"""What keel's plugin registries share: a registry of named factories, the config error it
reports, and a strict reader for one entry's options.

Eval scorers (:mod:`keel.evals.scorers`) and guard scanners (:mod:`keel.guard.scanners`) are
both built from config entries like ``{type: <name>, ...}``: a :class:`Registry` maps each type
name to a factory taking that mapping, and :meth:`Registry.build` turns a bad entry into a
:class:`LocatedConfigError` (each package has its own subclass) naming the entry, the key and
the fix. :class:`StrictOptions` is the base of each package's ``Options``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

from keel.errors import ConfigError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[[dict[str, Any]], Any])


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


class Registry(Generic[T]):
    """Factories (callables taking an entry's config mapping) registered by type name.

    ``noun`` names what is built in messages (``"scorer"``); ``error`` is the error raised for a
    bad entry (and the one a factory raises to report a bad option); ``load`` imports the
    built-ins, which register themselves; ``example`` is an entry shown when one is not a
    mapping; ``type_example``, when set, is a type shown when ``type:`` is missing.
    """

    def __init__(self, noun: str, error: type[LocatedConfigError], load: Callable[[], None],
                 example: str, type_example: str | None = None) -> None:
        self.noun = noun
        self.error = error
        self.load = load
        self.example = example
        self.type_example = type_example
        self.factories: dict[str, Callable[[dict[str, Any]], T]] = {}

    def register(self, type_name: str) -> Callable[[F], F]:
        """A decorator registering a factory under ``type_name``.

        Registering the same name again replaces the earlier factory (a plugin may override a
        built-in on purpose).
        """

        def deco(factory: F) -> F:
            self.factories[type_name] = factory
            return factory

        return deco

    def types(self) -> list[str]:
        """Every registered type, sorted."""
        self.load()
        return sorted(self.factories)

    def build(self, config: dict[str, Any], where: str) -> T:
        """Build one from its config mapping (``{type: ..., ...}``); ``where`` names the entry."""
        self.load()
        error = self.error
        if not isinstance(config, dict):
            raise error(f"must be a mapping with a type:, e.g. {self.example}", where=where)
        known = ", ".join(sorted(self.factories))
        type_name = config.get("type")
        if not isinstance(type_name, str) or not type_name:
            hint = f"; e.g. type: {self.type_example}" if self.type_example else ""
            raise error(f"required: one of {known}{hint}", key="type", where=where)
        factory = self.factories.get(type_name)
        if factory is None:
            raise error(f"unknown {self.noun} type '{type_name}'; known types: {known}",
                        key="type", where=where)
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
