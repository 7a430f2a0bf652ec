"""The provider interface and its registry.

A provider adapter speaks one wire protocol. It receives OpenAI-format bodies (``model``
already replaced by the upstream name) and returns OpenAI-format results, translating
both ways when its protocol differs. Provider *kinds* are names in the :data:`PROVIDERS`
registry (:mod:`keel.plugins`): the built-in adapters register with ``register_provider``; an
installed distribution adds a kind through the ``keel.providers`` entry point group (name: the
kind; object: a :class:`Provider` subclass). A provider entry's ``options:`` mapping is for
plugin providers: a class lists the keys it takes in ``option_names`` (built-ins take none)
and may check their values in ``check_options``; it reads them from ``config.options``.
:func:`config_providers` checks every entry's kind and options when the composition root
compiles the config.

Streaming contract: ``chat_stream`` is an async generator of OpenAI
``chat.completion.chunk`` dicts. Failures that happen before the first chunk (HTTP
status, connection, timeout) raise from the first ``__anext__``; the gateway pulls that
first chunk before it answers the client, so those become ordinary error responses. When
the upstream reports usage, the last chunk carries it (``choices: []``, ``usage: {...}``).

Secrets: ``self.secrets`` redacts the credentials this provider sends (its api_key, secret
headers, URL password). Every error message an adapter builds from what the upstream
said goes through it, since upstreams echo keys back (``Incorrect API key provided: ...``).
"""

from __future__ import annotations

import difflib
import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from keel.config import KeelConfig, ProviderConfig, checkable_providers
from keel.errors import ConfigError, UnsupportedOperation
from keel.plugins import LocatedConfigError, PluginError, Registry
from keel.secrets import SecretRedactor
from keel.types import JSON, ChatResult, EmbeddingResult


class Provider(ABC):
    kind: ClassVar[str]
    supports_embeddings: ClassVar[bool] = True
    # the keys this provider's ``options:`` may have (a plugin's own settings); none for
    # the built-ins, whose settings are keys of the provider entry itself
    option_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Raise ProviderConfigError(detail, key=OPTION) for options this provider cannot use;
        called when the config is compiled (``keel config check``, ``keel serve``), before
        any provider is built. By default: every key must be one of ``option_names``."""
        unknown = sorted(str(k) for k in set(options) - set(cls.option_names))
        if not unknown:
            return
        if not cls.option_names:
            raise ProviderConfigError(f"provider kind '{cls.kind}' takes no options (options: "
                                      "is for plugin providers); remove it", key=None)
        close = difflib.get_close_matches(unknown[0], cls.option_names, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ProviderConfigError(f"unknown option '{unknown[0]}'; {hint}the options of "
                                  f"'{cls.kind}' are: {', '.join(cls.option_names)}",
                                  key=unknown[0])

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name
        self.secrets = SecretRedactor.for_provider(config)

    async def start(self) -> None:  # noqa: B027  (optional hook)
        """Open pooled connections; called once inside the running event loop."""

    async def aclose(self) -> None:  # noqa: B027  (optional hook)
        """Close pooled connections."""

    @abstractmethod
    async def chat(self, body: JSON) -> ChatResult: ...

    @abstractmethod
    def chat_stream(self, body: JSON) -> AsyncIterator[JSON]: ...

    async def count_tokens(self, body: JSON) -> int | None:
        """The input tokens of an OpenAI chat body as the upstream counts them, or None when
        the protocol has no way to ask (keel then estimates)."""
        return None

    async def embed(self, body: JSON) -> EmbeddingResult:
        raise UnsupportedOperation(
            f"provider '{self.name}' ({self.kind}) does not serve embeddings; "
            "route embeddings to a model on an openai, gemini or mock provider",
            param="model",
        )


class ProviderConfigError(LocatedConfigError):
    """A provider entry that cannot be used; the message names where, which key and the fix.
    A provider's ``check_options`` raises it with ``key`` set to the option's name."""


def _load_builtins() -> None:
    from keel.gateway import providers  # noqa: F401  (imports the built-ins, which register)


def _provider_class(kind: str, item: object) -> type[Provider]:
    if not (isinstance(item, type) and issubclass(item, Provider)):
        raise TypeError(f"{item!r}, which is not a subclass of "
                        "keel.gateway.providers.base.Provider")
    if inspect.isabstract(item):
        missing = ", ".join(sorted(getattr(item, "__abstractmethods__", ())))
        raise TypeError(f"{item!r}, which does not define {missing}")
    item.kind = kind
    return item


PROVIDERS: Registry[type[Provider]] = Registry(
    "provider", "keel.providers", _load_builtins, _provider_class, what="kind")

P = TypeVar("P", bound=type[Provider])


def register_provider(kind: str) -> Callable[[P], P]:
    """Register a Provider subclass under ``kind`` (setting its ``kind``)."""
    return PROVIDERS.register(kind)


def provider_class(kind: str, where: str | None = None) -> type[Provider]:
    """The Provider subclass of ``kind``; an unknown kind (or a plugin that cannot be used) is
    a ProviderConfigError at ``where.kind``."""
    try:
        cls = PROVIDERS.get(kind)
    except PluginError as exc:
        raise ProviderConfigError(exc.message, key="kind", where=where) from None
    if cls is None:
        raise ProviderConfigError(PROVIDERS.unknown(kind), key="kind", where=where)
    return cls


def build_provider(config: ProviderConfig) -> Provider:
    """The provider of one entry; a plugin's constructor that fails is a ConfigError naming
    the entry and the plugin's entry point and distribution (a built-in's failure is a bug
    and propagates)."""
    cls = provider_class(config.kind)
    source = PROVIDERS.source(config.kind)
    if source is None:
        return cls(config)
    try:
        return cls(config)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"provider '{config.name}' (kind {config.kind}, the "
                          f"{source.describe()}) could not be built: "
                          f"{type(exc).__name__}: {exc}") from exc


def provider_problems(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every provider entry (``providers:`` as loaded, or as written in a file the loader
    refused) whose ``kind`` is unknown (or a plugin that cannot be used) or whose ``options``
    its provider refuses, each as ``providers[i].key: what; fix``; entries the loader
    reports are skipped (``keel.config.checkable_providers``)."""
    return [p for where, kind, options in checkable_providers(entries)
            if (p := entry_problem(where, kind, options)) is not None]


def entry_problem(where: str, kind: str, options: dict[str, Any]) -> str | None:
    """What is wrong with one provider entry's kind and options (None: nothing)."""
    try:
        cls = provider_class(kind, where)
        try:
            cls.check_options(dict(options))
        except ProviderConfigError as exc:
            key = f"options.{exc.key}" if exc.key else "options"
            raise ProviderConfigError(exc.detail, key=key, where=where) from None
        except Exception as exc:  # a plugin's check that fails in its own way
            raise ProviderConfigError(
                f"provider kind '{kind}' could not check its options: "
                f"{type(exc).__name__}: {exc}", key="options", where=where) from exc
    except ProviderConfigError as exc:
        return exc.message
    return None


def config_providers(config: KeelConfig, path: str | None) -> None:
    """Check every provider entry's kind and options (:func:`provider_problems`): done by
    whoever composes keel from the config, before the gateway builds them. A ConfigError
    names the config file ``path``, as the loader's own errors do, and every problem; plugins
    installed with clashing names are a PluginError of their own (not the file's fault)."""
    PROVIDERS.discover()
    problems = provider_problems([{"kind": p.kind, "options": p.options}
                                  for p in config.providers])
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" if path else p for p in problems))
