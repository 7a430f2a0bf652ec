"""Google Gemini (Generative Language API, ``v1beta``), translated to and from OpenAI format.

The key travels in the ``x-goog-api-key`` header. A model's ``upstream`` is the Gemini
model id (``gemini-2.5-flash``) or a full resource name (``tunedModels/my-model``). The
translation itself lives in ``keel.gateway.gemini_format``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator

from keel.config import ProviderConfig
from keel.errors import UpstreamError, UpstreamRejected
from keel.gateway.gemini_format import (
    StreamTranslator,
    to_gemini_embed_request,
    to_gemini_request,
    to_openai_completion,
    to_openai_embeddings,
)
from keel.gateway.providers.base import Provider, register_provider
from keel.gateway.providers.http import Upstream, parse_json_event, upstream_fault
from keel.types import JSON, ChatResult, EmbeddingResult

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
MAX_SIGNATURES = 4096


class SignatureMemory(OrderedDict[str, str]):
    """The thought signatures of recent function calls, oldest forgotten first."""

    def __init__(self, limit: int = MAX_SIGNATURES) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


def resource_name(model: str) -> str:
    return model if "/" in model else f"models/{model}"


@register_provider("gemini")
class GeminiProvider(Provider):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        headers = dict(config.headers)
        if config.api_key:
            headers["x-goog-api-key"] = config.api_key
        self.http = Upstream(
            config.name, config.base_url or DEFAULT_BASE_URL, headers=headers,
            timeout_s=config.timeout_s, connect_timeout_s=config.connect_timeout_s,
            max_connections=config.max_connections, redact=self.secrets.redact,
        )
        self.signatures = SignatureMemory()

    async def start(self) -> None:
        await self.http.start()

    async def aclose(self) -> None:
        await self.http.aclose()

    def _credentials(self, exc: UpstreamRejected) -> UpstreamError:
        """Gemini answers a bad key with 400 INVALID_ARGUMENT: that is keel's fault, not the
        client's, so report it like any other rejected credential."""
        if "API key" in exc.message:
            return UpstreamError(f"{exc.message}; check the provider's api_key in the keel "
                                 "config", code="upstream_auth_failed")
        return exc

    async def chat(self, body: JSON) -> ChatResult:
        model = str(body["model"])
        payload = to_gemini_request(body, self.signatures)
        try:
            data = await self.http.post_json(f"/{resource_name(model)}:generateContent", payload,
                                             model=model)
        except UpstreamRejected as exc:
            raise self._credentials(exc) from None
        if not isinstance(data, dict):
            raise UpstreamError(f"provider '{self.name}' returned JSON that is not a "
                                "GenerateContentResponse object", code="upstream_bad_response")
        out, usage = to_openai_completion(data, model, self.name, self.signatures)
        return ChatResult(body=out, usage=usage, served_model=str(out["model"]))

    async def chat_stream(self, body: JSON) -> AsyncIterator[JSON]:
        model = str(body["model"])
        payload = to_gemini_request(body, self.signatures)
        translator = StreamTranslator(model, self.signatures)
        events = self.http.stream_sse(f"/{resource_name(model)}:streamGenerateContent", payload,
                                      params={"alt": "sse"}, model=model)
        try:
            async for _event, data in events:
                event = parse_json_event(self.name, data, self.secrets.redact)
                if "error" in event and "candidates" not in event:
                    message, fault = upstream_fault(data, self.secrets.redact)
                    raise UpstreamError(f"provider '{self.name}' reported an error mid-stream: "
                                        f"{message}", code="upstream_stream_error", fault=fault)
                for chunk in translator.translate(event):
                    yield chunk
        except UpstreamRejected as exc:
            raise self._credentials(exc) from None
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        if not translator.done:
            raise UpstreamError(f"provider '{self.name}' ended the stream before the answer "
                                "was finished (no finishReason)", code="upstream_stream_broken")
        usage = translator.usage_chunk()
        if usage is not None:
            yield usage

    async def embed(self, body: JSON) -> EmbeddingResult:
        model = str(body["model"])
        payload = to_gemini_embed_request(body, resource_name(model))
        try:
            data = await self.http.post_json(f"/{resource_name(model)}:batchEmbedContents",
                                              payload, model=model)
        except UpstreamRejected as exc:
            raise self._credentials(exc) from None
        if not isinstance(data, dict):
            raise UpstreamError(f"provider '{self.name}' returned JSON that is not an object",
                                code="upstream_bad_response")
        out, usage = to_openai_embeddings(data, body, self.name)
        return EmbeddingResult(body=out, usage=usage, served_model=model)
