"""The optional integrations: which package each needs, and the extra that installs it.

The embedded default (SQLite, in-process limits and cache, no OTLP) needs none of them::

    extra            package               needed when
    keel[postgres]   asyncpg               KEEL_DATABASE_URL is a postgresql:// URL
    keel[redis]      redis (with hiredis)  KEEL_REDIS_URL is set
    keel[otel]       opentelemetry-proto   KEEL_OTLP_ENDPOINT is set (export); a request
                                           to POST /v1/traces (ingest)
    keel[semantic]   numpy                 never: the semantic cache is faster with it

Each package is imported where it is used, once a setting or a request asks for it
(``import_extra``); ``keel serve`` and ``keel config check`` refuse a setting whose package
is missing with one line naming the extra (``missing_extras``), and a request to an
endpoint whose package is missing gets 501 ``extra_not_installed``. The OTLP modules
(``keel.telemetry.otel_export``, ``keel.ingest.otlp``) import opentelemetry-proto at their
top: nothing imports them until OTLP is used.

Code that names redis's exceptions (``except``, ``isinstance``) takes them from here:
redis's own classes when the package is installed, else stand-ins nothing raises (no Redis
client can exist without the package). The names are bound the first time one is read (the
module's ``__getattr__``), so importing this module imports nothing; code reads them where
it uses them (``except (extras.RedisError, OSError)``, evaluated only when an exception
arrives), never at import, so that redis is imported only once Redis is configured (a
client made, or ``missing_extras`` asked), even when it is installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from keel.config.settings import Settings
from keel.errors import ExtraNotInstalled

__all__ = ["OTEL", "POSTGRES", "REDIS", "SEMANTIC", "Extra", "NoScriptError",
           "RedisConnectionError", "RedisError", "import_extra", "is_postgres",
           "missing_extras", "require_extras"]

if TYPE_CHECKING:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, RedisError

_REDIS_ERRORS = ("NoScriptError", "RedisConnectionError", "RedisError")


def _stand_ins() -> dict[str, type[Exception]]:
    """Without keel[redis]: stand-ins for redis's exceptions, which nothing raises."""

    class RedisError(Exception):
        """Stands in for ``redis.exceptions.RedisError`` (redis is not installed)."""

    class RedisConnectionError(RedisError):
        """Stands in for ``redis.exceptions.ConnectionError``."""

    class NoScriptError(RedisError):
        """Stands in for ``redis.exceptions.NoScriptError``."""

    return {"RedisError": RedisError, "RedisConnectionError": RedisConnectionError,
            "NoScriptError": NoScriptError}


def __getattr__(name: str) -> Any:
    """redis's exception classes, bound on first use: redis's own when it is installed,
    else stand-ins."""
    if name not in _REDIS_ERRORS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from redis import exceptions
    except ImportError:
        found = _stand_ins()
    else:
        found = {"RedisError": exceptions.RedisError,
                 "RedisConnectionError": exceptions.ConnectionError,
                 "NoScriptError": exceptions.NoScriptError}
    globals().update(found)  # bound once: later reads are plain module attributes
    return found[name]


@dataclass(frozen=True, slots=True)
class Extra:
    """An optional integration: ``pip install 'keel[<name>]'`` installs ``package``, which
    keel uses by importing ``module``."""

    name: str
    package: str
    module: str

    def missing(self, because: str, cause: ImportError | None = None) -> ExtraNotInstalled:
        """The error for ``because`` (what asks for the package: "KEEL_REDIS_URL is set")
        when the package cannot be imported; names the module that is missing when it is
        another one (a dependency of the package)."""
        detail = ""
        top = self.module.split(".", 1)[0]
        if cause is not None and cause.name and cause.name.split(".", 1)[0] != top:
            detail = f" ({cause})"
        return ExtraNotInstalled(f"{because} but the {self.package} package is not "
                                 f"installed{detail}: pip install 'keel[{self.name}]'")


POSTGRES = Extra("postgres", "asyncpg", "asyncpg")
REDIS = Extra("redis", "redis", "redis.asyncio")
OTEL = Extra("otel", "opentelemetry-proto",
             "opentelemetry.proto.collector.trace.v1.trace_service_pb2")
SEMANTIC = Extra("semantic", "numpy", "numpy")


def import_extra(extra: Extra, because: str) -> ModuleType:
    """``extra``'s module, imported; ``ExtraNotInstalled`` (saying ``because``) when its
    package, or a package it needs, is not installed."""
    try:
        return importlib.import_module(extra.module)
    except ImportError as exc:
        raise extra.missing(because, exc) from None


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg:"))


def missing_extras(settings: Settings) -> list[str]:
    """One line per setting whose package is not installed (empty when all are)."""
    wanted: list[tuple[Extra, str]] = []
    if settings.database_url and is_postgres(settings.database_url):
        wanted.append((POSTGRES, "KEEL_DATABASE_URL is a PostgreSQL URL"))
    if settings.redis_url:
        wanted.append((REDIS, "KEEL_REDIS_URL is set"))
    if settings.otlp_endpoint:
        wanted.append((OTEL, "KEEL_OTLP_ENDPOINT is set"))
    problems: list[str] = []
    for extra, because in wanted:
        try:
            import_extra(extra, because)
        except ExtraNotInstalled as exc:
            problems.append(exc.message)
    return problems


def require_extras(settings: Settings) -> None:
    """Raise ``ExtraNotInstalled`` (one line per problem) unless every package the settings
    ask for is installed."""
    problems = missing_extras(settings)
    if problems:
        raise ExtraNotInstalled("\n".join(problems))
