"""Any OpenAI-compatible upstream: OpenAI, Azure OpenAI, vLLM, Ollama, Groq, Together, ...

Azure OpenAI is selected by setting ``api_version``: ``base_url`` is then the resource
endpoint (``https://NAME.openai.azure.com``), the model's ``upstream`` is the deployment
name, and the key travels in the ``api-key`` header.

vLLM reports the stop string that ended an answer in ``choices[i].stop_reason``; when the
request had stop sequences and it is a string, it is also put under keel's internal
``stop_sequence`` key (what ``/v1/messages`` answers with).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from keel.config import ProviderConfig
from keel.errors import UpstreamError
from keel.gateway.anthropic_format import STOP_SEQUENCE
from keel.gateway.providers.base import Provider, register_provider
from keel.gateway.providers.http import Upstream, parse_json_event, upstream_fault
from keel.gateway.wire import Wire
from keel.types import JSON, ChatResult, EmbeddingResult, Usage


@register_provider("openai")
class OpenAIProvider(Provider):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.azure = config.api_version is not None
        headers = dict(config.headers)
        if config.api_key:
            if self.azure:
                headers["api-key"] = config.api_key
            else:
                headers["authorization"] = f"Bearer {config.api_key}"
        self.params = {"api-version": config.api_version} if config.api_version else None
        self.http = Upstream(
            config.name, config.base_url or "", headers=headers, timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s, max_connections=config.max_connections,
            redact=self.secrets.redact,
        )

    async def start(self) -> None:
        await self.http.start()

    async def aclose(self) -> None:
        await self.http.aclose()

    def _path(self, body: JSON, endpoint: str) -> str:
        if self.azure:
            return f"/openai/deployments/{body['model']}/{endpoint}"
        return f"/{endpoint}"

    async def chat(self, body: JSON) -> ChatResult:
        raw: bytes | None
        data, raw = await self.http.post_json_raw(self._path(body, "chat/completions"), body,
                                                  params=self.params)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError(
                f"provider '{self.name}' returned JSON that is not a chat completion "
                "(no 'choices' list)", code="upstream_bad_response",
            )
        if body.get("stop") and _mark_stop_sequences(data):
            raw = None  # the body now differs from what the upstream sent
        return ChatResult(body=data, usage=Usage.from_openai(data.get("usage")),
                          served_model=str(data.get("model") or body["model"]), raw=raw)

    # ``chat_stream`` takes a ``Wire`` (``keel.gateway.wire``) for each chunk's bytes
    wire_bytes: ClassVar[bool] = True

    async def chat_stream(self, body: JSON, wire: Wire | None = None) -> AsyncIterator[JSON]:
        """The upstream's chunks; with ``wire``, each chunk's own bytes are put on it just
        before the chunk is yielded (None when a stop sequence was marked on it)."""
        stops = bool(body.get("stop"))
        body = dict(body)
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        redact = self.secrets.redact
        async for events in self.http.stream_sse_batches(
            self._path(body, "chat/completions"), body, params=self.params
        ):
            for _event, data in events:
                if data == b"[DONE]":
                    return
                chunk = parse_json_event(self.name, data, redact)
                if "error" in chunk and "choices" not in chunk:
                    message, fault = upstream_fault(data, redact)
                    raise UpstreamError(
                        f"provider '{self.name}' reported an error mid-stream: {message}",
                        code="upstream_stream_error", fault=fault,
                    )
                if wire is not None:
                    wire.data = None if stops and _mark_stop_sequences(chunk) else data
                elif stops:
                    _mark_stop_sequences(chunk)
                yield chunk

    async def embed(self, body: JSON) -> EmbeddingResult:
        data = await self.http.post_json(self._path(body, "embeddings"), body, params=self.params)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UpstreamError(
                f"provider '{self.name}' returned JSON that is not an embedding list",
                code="upstream_bad_response",
            )
        usage = data.get("usage") or {}
        return EmbeddingResult(
            body=data,
            usage=Usage(input_tokens=int(usage.get("prompt_tokens") or 0)),
            served_model=str(data.get("model") or body["model"]),
        )


def _mark_stop_sequences(data: JSON) -> bool:
    """vLLM's ``stop_reason`` string (the stop sequence matched) -> keel's ``stop_sequence``.
    True when a choice was marked."""
    marked = False
    for choice in data.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") == "stop":
            matched = choice.get("stop_reason")
            if isinstance(matched, str):
                choice[STOP_SEQUENCE] = matched
                marked = True
    return marked
