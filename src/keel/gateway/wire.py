"""The upstream's own bytes of what a chat answer passes on unchanged.

When keel has nothing to rewrite in an answer (no guard holds it, no cache replays it, the
adapter marked nothing), the OpenAI endpoint sends the bytes the upstream sent instead of
serialising the parsed answer again. A ``Wire`` carries them from where they are known (the
adapter, the flow) to the endpoint: for a completion, the body's bytes once the flow has
returned it; for a stream, the ``data`` of the chunk it has just yielded, set before each
yield and read by the consumer before it asks for the next chunk. ``None`` means "serialise
the parsed value": nothing is known, or keel changed it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from keel.types import JSON


class Wire:
    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: bytes | None = None


class WireStreams(Protocol):
    """A provider adapter whose ``chat_stream`` puts each chunk's bytes on a ``Wire``; it says
    so with a class attribute ``wire_bytes = True``."""

    def chat_stream(self, body: JSON, wire: Wire | None = None) -> AsyncIterator[JSON]: ...
