"""Provider adapters, one module per wire protocol. Importing this registers the built-ins."""

from keel.gateway.providers import anthropic, gemini, mock, openai  # noqa: F401

__all__: list[str] = []
