"""Anthropic's Messages API (``POST /v1/messages``), translated to and from OpenAI chat.

The translation itself is pure and lives in ``keel.gateway.anthropic_format``; this
adapter does the HTTP: ``x-api-key`` and ``anthropic-version`` headers (``headers`` in the
provider config win, e.g. to add ``anthropic-beta``), JSON and SSE calls, and the mapping
of an ``error`` event in the stream to ``UpstreamError``. Error statuses go through the
shared ``status_error``, where 529 (overloaded) becomes a retryable ``UpstreamUnavailable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from keel.config import ProviderConfig
from keel.errors import UpstreamError, UpstreamRateLimited, UpstreamUnavailable
from keel.gateway.anthropic_format import (
    StreamTranslator,
    from_anthropic_response,
    to_anthropic_request,
)
from keel.gateway.providers.base import Provider, register_provider
from keel.gateway.providers.http import Redact, Upstream, excerpt, fault_of, parse_json_event
from keel.types import JSON, ChatResult

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


def stream_error(provider: str, event: JSON, redact: Redact | None = None) -> UpstreamError:
    """An ``error`` event in the stream -> the error keel reports (or sends mid-stream)."""
    err = event.get("error")
    if not isinstance(err, dict):
        err = {}
    kind, message = str(err.get("type") or "error"), str(err.get("message") or "")
    if redact is not None:
        kind, message = excerpt(kind, redact, 64), excerpt(message, redact)
    text = f"provider '{provider}' reported an error mid-stream: {kind}: {message}"
    fault = fault_of(err, redact) if redact is not None else fault_of(err)
    if kind == "overloaded_error":
        return UpstreamUnavailable(text, code="upstream_overloaded", fault=fault)
    if kind == "rate_limit_error":
        return UpstreamRateLimited(text, fault=fault)
    return UpstreamError(text, code="upstream_stream_error", fault=fault)


@register_provider("anthropic")
class AnthropicProvider(Provider):
    supports_embeddings = False

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        headers = {"anthropic-version": API_VERSION}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        headers.update(config.headers)
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.path = "/messages" if base_url.endswith("/v1") else "/v1/messages"
        self.count_path = self.path + "/count_tokens"
        self.http = Upstream(
            config.name, base_url, headers=headers, timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s, max_connections=config.max_connections,
            redact=self.secrets.redact,
        )

    async def start(self) -> None:
        await self.http.start()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def chat(self, body: JSON) -> ChatResult:
        request, answer_tool = to_anthropic_request(body)
        data = await self.http.post_json(self.path, request)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise UpstreamError(
                f"provider '{self.name}' returned JSON that is not an Anthropic message "
                "(no 'content' list)", code="upstream_bad_response",
            )
        completion, usage = from_anthropic_response(data, answer_tool)
        return ChatResult(body=completion, usage=usage,
                          served_model=completion["model"] or body["model"])

    async def count_tokens(self, body: JSON) -> int | None:
        """Anthropic's own count (``POST /v1/messages/count_tokens``: the request without
        ``max_tokens``)."""
        request, _ = to_anthropic_request(body)
        for field in ("max_tokens", "temperature", "top_p", "stop_sequences", "metadata"):
            request.pop(field, None)
        data = await self.http.post_json(self.count_path, request)
        count = data.get("input_tokens") if isinstance(data, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise UpstreamError(f"provider '{self.name}' answered count_tokens without an "
                                "input_tokens count", code="upstream_bad_response")
        return count

    async def chat_stream(self, body: JSON) -> AsyncIterator[JSON]:
        request, answer_tool = to_anthropic_request(body)
        request["stream"] = True
        translator = StreamTranslator(body["model"], answer_tool)
        async for _event, data in self.http.stream_sse(self.path, request):
            event = parse_json_event(self.name, data, self.secrets.redact)
            if event.get("type") == "error":
                raise stream_error(self.name, event, self.secrets.redact)
            for chunk in translator.feed(event):
                yield chunk
            if translator.done:
                return
        raise UpstreamError(f"provider '{self.name}' ended the stream before message_stop",
                            code="upstream_stream_broken")
