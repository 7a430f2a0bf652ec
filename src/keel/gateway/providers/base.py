"""The provider interface and its registry.

A provider adapter speaks one wire protocol. It receives OpenAI-format bodies (``model``
already replaced by the upstream name) and returns OpenAI-format results, translating
both ways when its protocol differs. Built-in adapters register through
``register_provider`` exactly as third-party ones would.

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

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import ClassVar, TypeVar

from keel.config import ProviderConfig
from keel.errors import UnsupportedOperation
from keel.secrets import SecretRedactor
from keel.types import JSON, ChatResult, EmbeddingResult


class Provider(ABC):
    kind: ClassVar[str]
    supports_embeddings: ClassVar[bool] = True

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


_REGISTRY: dict[str, type[Provider]] = {}

P = TypeVar("P", bound=type[Provider])


def register_provider(kind: str) -> Callable[[P], P]:
    def deco(cls: P) -> P:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


def provider_class(kind: str) -> type[Provider]:
    from keel.gateway import providers  # noqa: F401  (imports the built-ins, which register)

    try:
        return _REGISTRY[kind]
    except KeyError:
        raise LookupError(f"no provider adapter registered for kind '{kind}'") from None


def build_provider(config: ProviderConfig) -> Provider:
    return provider_class(config.kind)(config)
