"""The gateway: providers and models held in memory, attribution, and trace completion.

Inbound protocol modules (``openai_api``, ``anthropic_api``) parse and answer HTTP;
everything they share — resolving a model for a caller, calling its provider, and
turning the outcome into a trace — lives here, so every protocol is traced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from keel.config import KeelConfig, ModelConfig, Settings
from keel.errors import (
    KeelError,
    PermissionDenied,
    UnknownModel,
    UnsupportedOperation,
    UpstreamError,
)
from keel.gateway.providers.base import Provider, build_provider
from keel.telemetry.metrics import Metrics
from keel.telemetry.writer import TraceWriter
from keel.types import JSON, ChatResult, EmbeddingResult, Price, Principal, Trace, Usage

# Body fields keel consumes for attribution and does not forward upstream.
KEEL_FIELDS = ("metadata",)


@dataclass(slots=True)
class ModelEntry:
    config: ModelConfig
    provider: Provider
    price: Price

    @property
    def name(self) -> str:
        return self.config.name


class Gateway:
    def __init__(
        self, settings: Settings, config: KeelConfig, writer: TraceWriter, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.metrics = metrics
        self.providers: dict[str, Provider] = {p.name: build_provider(p) for p in config.providers}
        self.models: dict[str, ModelEntry] = {
            m.name: ModelEntry(m, self.providers[m.provider], m.price.to_price())
            for m in config.models
        }

    async def start(self) -> None:
        for p in self.providers.values():
            await p.start()

    async def aclose(self) -> None:
        for p in self.providers.values():
            with contextlib.suppress(Exception):
                await p.aclose()

    # --- resolution and attribution ----------------------------------------------------------

    def visible_models(self, principal: Principal) -> list[ModelEntry]:
        return [m for m in self.models.values() if principal.may_use(m.name)]

    def resolve(self, principal: Principal, name: str, kind: str) -> ModelEntry:
        entry = self.models.get(name)
        if entry is None or not principal.may_use(name):
            if entry is not None:
                raise PermissionDenied(
                    f"this key may not use model '{name}'; it may use: "
                    f"{', '.join(principal.models or ()) or 'no models'}", param="model",
                    code="model_not_allowed")
            known = ", ".join(m.name for m in self.visible_models(principal)) or "none"
            raise UnknownModel(f"model '{name}' does not exist; models you may use: {known}",
                               param="model")
        if entry.config.kind != kind:
            raise UnsupportedOperation(
                f"model '{name}' is a {entry.config.kind} model and cannot serve "
                f"{'chat completions' if kind == 'chat' else 'embeddings'}", param="model")
        return entry

    @staticmethod
    def attribute(
        trace: Trace, principal: Principal, headers: Mapping[str, str], body: JSON
    ) -> None:
        """Fill who/what on the trace: team, feature, user, session, tags."""
        trace.key_id = principal.key_id
        trace.team = principal.team
        raw_md = body.get("metadata")
        md: dict[str, Any] = raw_md if isinstance(raw_md, dict) else {}
        requested = headers.get("x-keel-feature") or md.get("feature")
        if requested and principal.feature and requested != principal.feature \
                and not principal.feature_override:
            raise PermissionDenied(
                f"this key is bound to feature '{principal.feature}' and may not report "
                f"feature '{requested}'; drop X-Keel-Feature or use a key for that feature",
                code="feature_not_allowed")
        trace.feature = requested or principal.feature or "default"
        user = body.get("user")
        trace.user = user if isinstance(user, str) else (headers.get("x-keel-user") or None)
        trace.session = headers.get("x-keel-session") or md.get("session") or None
        tags = {k: v for k, v in md.items() if k not in ("feature", "session")}
        raw_tags = headers.get("x-keel-tags")
        if raw_tags:
            for part in raw_tags.split(","):
                k, _, v = part.partition("=")
                if k.strip():
                    tags[k.strip()] = v.strip()
        trace.tags = tags

    # --- calls -------------------------------------------------------------------------------

    @staticmethod
    def upstream_body(entry: ModelEntry, body: JSON) -> JSON:
        out = {k: v for k, v in body.items() if k not in KEEL_FIELDS}
        out["model"] = entry.config.upstream_name
        return out

    async def chat(self, entry: ModelEntry, body: JSON, trace: Trace) -> ChatResult:
        trace.provider = entry.provider.name
        trace.attempts += 1
        result = await entry.provider.chat(self.upstream_body(entry, body))
        trace.model_served = result.served_model
        trace.usage = result.usage
        return result

    async def open_stream(
        self, entry: ModelEntry, body: JSON, trace: Trace
    ) -> AsyncIterator[JSON]:
        """Start a streamed chat and pull its first chunk before anything reaches the client,
        so failures up to that point are ordinary errors. Returns the traced chunk stream."""
        trace.provider = entry.provider.name
        trace.attempts += 1
        trace.model_served = entry.config.upstream_name
        rest = entry.provider.chat_stream(self.upstream_body(entry, body))
        first = await anext(rest, None)
        if first is None:
            raise UpstreamError(f"provider '{entry.provider.name}' closed the stream without "
                                "sending anything", code="upstream_bad_response")
        return self.traced_stream(trace, entry, first, rest)

    async def embed(self, entry: ModelEntry, body: JSON, trace: Trace) -> EmbeddingResult:
        trace.provider = entry.provider.name
        trace.attempts += 1
        result = await entry.provider.embed(self.upstream_body(entry, body))
        trace.model_served = result.served_model
        trace.usage = result.usage
        return result

    # --- completion --------------------------------------------------------------------------

    def complete(
        self, trace: Trace, status: int, *, price: Price | None = None,
        error: KeelError | None = None,
    ) -> None:
        """Finish the trace, price it, count it, and hand it to the writer (non-blocking)."""
        if error is not None:
            trace.finish(error.status, error.error_type, error.message)
        else:
            trace.finish(status)
        if price is not None:
            trace.cost_usd = price.cost(trace.usage)
        if not self.settings.capture_content:
            trace.request_body = trace.response_body = None
        self.metrics.observe(trace)
        self.writer.submit(trace)

    async def traced_stream(
        self, trace: Trace, entry: ModelEntry, first: JSON, rest: AsyncIterator[JSON]
    ) -> AsyncIterator[JSON]:
        """Yield ``first`` then ``rest``, recording usage and output; finish the trace at end."""
        acc = StreamAccumulator()
        error: KeelError | None = None
        try:
            chunk: JSON | None = first
            while chunk is not None:
                acc.add(chunk)
                if chunk.get("choices"):
                    trace.mark_first_token()
                yield chunk
                chunk = await anext(rest, None)
        except KeelError as exc:
            error = KeelError(f"stream interrupted: {exc.message}", code=exc.error_type,
                              status=exc.status)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            error = KeelError("the client closed the connection mid-stream",
                              code="client_disconnected", status=499)
            raise
        except Exception as exc:
            error = KeelError(f"internal error mid-stream: {exc!r}", code="internal_error")
            raise
        finally:
            with contextlib.suppress(BaseException):
                await rest.aclose()  # type: ignore[attr-defined]
            trace.usage = acc.usage
            if acc.model:
                trace.model_served = acc.model
            trace.response_body = acc.body()
            self.complete(trace, 200, price=entry.price, error=error)


class StreamAccumulator:
    """Collects a streamed answer (text, tool calls, finish reasons, usage) for the trace."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: JSON) -> None:
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_openai(usage)
        if self.model is None and chunk.get("model"):
            self.model = str(chunk["model"])
        for choice in chunk.get("choices") or ():
            slot = self._choices.setdefault(int(choice.get("index") or 0),
                                            {"content": [], "tool_calls": {}, "finish": None})
            delta = choice.get("delta") or {}
            if delta.get("content"):
                slot["content"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                entry = slot["tool_calls"].setdefault(int(call.get("index") or 0),
                                                      {"id": None, "name": "", "arguments": ""})
                entry["id"] = call.get("id") or entry["id"]
                fn = call.get("function") or {}
                entry["name"] += fn.get("name") or ""
                entry["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                slot["finish"] = choice["finish_reason"]

    def body(self) -> JSON:
        choices = []
        for idx in sorted(self._choices):
            slot = self._choices[idx]
            msg: JSON = {"role": "assistant", "content": "".join(slot["content"]) or None}
            if slot["tool_calls"]:
                msg["tool_calls"] = [
                    {"id": c["id"], "type": "function",
                     "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for _, c in sorted(slot["tool_calls"].items())]
            choices.append({"index": idx, "message": msg, "finish_reason": slot["finish"]})
        return {"object": "chat.completion", "streamed": True, "model": self.model,
                "choices": choices, "usage": self.usage.to_openai()}
