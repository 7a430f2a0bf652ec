"""What a caller inside keel (the eval runner, its judges, scheduled suites) asks of a
gateway, and what it gets back.

A module of its own, importing only ``keel.errors`` and ``keel.types``: evals depend on this
protocol, never on the gateway's internals or the application state;
``keel.gateway.internal.LocalGateway`` is the implementation a process hands them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from keel.errors import KeelError
from keel.types import JSON


@dataclass(slots=True)
class Reply:
    """What a call produced: the body (None on error), and what it took."""

    body: JSON | None
    trace_id: str
    latency_ms: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    model: str | None
    error: KeelError | None = None


class ModelCalls(Protocol):
    """Chat completions and embeddings through a gateway; a KeelError is on the reply,
    never raised."""

    async def chat(self, body: JSON, *, tags: dict[str, str] | None = None,
                   prompt: tuple[str, int] | None = None) -> Reply: ...

    async def embed(self, body: JSON, *, tags: dict[str, str] | None = None) -> Reply: ...
