"""Translation between keel's OpenAI chat format and Google Gemini's ``generateContent``.

Pure functions (plus one small stateful stream translator); the HTTP side lives in
``keel.gateway.providers.gemini``. Choices made where the two formats do not line up:

* ``response_format: json_schema`` becomes ``responseMimeType: application/json`` plus
  ``responseJsonSchema`` (not ``responseSchema``): it takes ordinary JSON Schema as-is,
  while ``responseSchema`` is an OpenAPI subset that rejects keys OpenAI strict schemas
  always carry (``additionalProperties``). Tool parameters go to ``parametersJsonSchema``
  for the same reason.
* A prompt Gemini blocks outright (``promptFeedback.blockReason``, no candidates) is
  answered as a normal completion with ``finish_reason: content_filter``, ``content:
  null`` and a ``refusal`` naming the reason, the way OpenAI reports filtered output.
* Consecutive messages that map to the same Gemini role are merged into one turn, so
  parallel tool results arrive together as Gemini requires.
* Gemini's ``thought`` parts (reasoning summaries) are left out of the answer's content.
* Gemini 3 models attach an opaque ``thoughtSignature`` to function calls and reject a
  replayed call without it. OpenAI's format has no place for it, so the provider keeps
  the signatures it has seen, keyed by tool call id (``signatures`` below), and puts them
  back on replay. A call it has no signature for (another keel process made it, or the
  memory was full) gets Google's documented sentinel ``skip_thought_signature_validator``
  on Gemini 3 and later, which the API accepts in place of a real signature.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import re
import struct
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from keel.errors import InvalidRequest, UnsupportedOperation, UpstreamError
from keel.text import content_text, estimate_text
from keel.types import JSON, Usage

FILTER_REASONS = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
    "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT",
})
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
SKIP_SIGNATURE = "skip_thought_signature_validator"
_MAJOR_VERSION = re.compile(r"gemini-(\d+)")

# tool call id -> Gemini ``thoughtSignature`` of the functionCall that produced it
Signatures = MutableMapping[str, str]


def needs_signatures(model: str) -> bool:
    """Whether the model rejects replayed function calls without a thought signature."""
    found = _MAJOR_VERSION.search(model)
    return found is not None and int(found.group(1)) >= 3


# --- OpenAI request -> Gemini request -----------------------------------------------------


def to_gemini_request(body: JSON, signatures: Signatures | None = None) -> JSON:
    """The ``generateContent`` body for an OpenAI chat completions body."""
    system, contents = convert_messages(body.get("messages") or [], signatures,
                                        needs_signatures(str(body.get("model") or "")))
    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = generation_config(body)
    if config:
        out["generationConfig"] = config
    tools = function_declarations(body)
    if tools:
        out["tools"] = [{"functionDeclarations": tools}]
    choice = body.get("tool_choice", body.get("function_call"))
    if choice is not None:
        out["toolConfig"] = {"functionCallingConfig": tool_choice(choice)}
    return out


def convert_messages(messages: list[JSON], signatures: Signatures | None = None,
                     sentinel: bool = False) -> tuple[list[JSON], list[JSON]]:
    """Split OpenAI messages into Gemini ``systemInstruction`` parts and ``contents``."""
    system: list[JSON] = []
    contents: list[JSON] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name, for tool results
    for i, m in enumerate(messages):
        role = m.get("role")
        if role in ("system", "developer"):
            text = content_text(m.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role == "assistant":
            gemini_role, parts = "model", _assistant_parts(m, i, call_names)
            _sign(m, parts, signatures or {}, sentinel)
        elif role == "tool":
            gemini_role, parts = "user", [_tool_result(m, i, call_names)]
        elif role == "function":  # the legacy single-function form
            gemini_role, parts = "user", [{"functionResponse": {
                "name": str(m.get("name") or ""), "response": tool_response(m.get("content"))}}]
        else:
            gemini_role, parts = "user", user_parts(m.get("content"), f"messages[{i}].content")
        if not parts:
            continue
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    return system, contents


def user_parts(content: Any, where: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[JSON] = []
    for j, part in enumerate(content or ()):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": str(part.get("text") or "")})
        elif kind == "image_url":
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            parts.append(_media_part(str(url or ""), f"{where}[{j}].image_url.url"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}",
                                         "data": str(audio.get("data") or "")}})
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data")
            if not isinstance(data, str) or not data.startswith("data:"):
                raise UnsupportedOperation(
                    "Gemini models take files only inline, as a data: URL in 'file.file_data'",
                    param=f"{where}[{j}].file")
            parts.append(_media_part(data, f"{where}[{j}].file.file_data"))
        else:
            raise InvalidRequest(f"content part type {kind!r} is not supported for Gemini "
                                 "models; use text, image_url, input_audio or file",
                                 param=f"{where}[{j}].type")
    return parts


def _media_part(url: str, where: str) -> JSON:
    if url.startswith("data:"):
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise InvalidRequest("malformed data: URL (no ',' before the data)", param=where)
        mime = header.split(";", 1)[0] or "application/octet-stream"
        if ";base64" not in header:
            payload = base64.b64encode(unquote_to_bytes(payload)).decode()
        return {"inlineData": {"mimeType": mime, "data": payload}}
    file: JSON = {"fileUri": url}
    guessed, _ = mimetypes.guess_type(url)
    if guessed:
        file["mimeType"] = guessed
    return {"fileData": file}


def _assistant_parts(m: JSON, i: int, call_names: dict[str, str]) -> list[JSON]:
    parts: list[JSON] = []
    text = content_text(m.get("content"), "")
    if text:
        parts.append({"text": text})
    calls = list(m.get("tool_calls") or ())
    if m.get("function_call"):
        calls.append({"id": None, "function": m["function_call"]})
    for j, call in enumerate(calls):
        fn = call.get("function") or {}
        name = str(fn.get("name") or "")
        if call.get("id"):
            call_names[str(call["id"])] = name
        args = _arguments(fn.get("arguments"), f"messages[{i}].tool_calls[{j}].function.arguments")
        parts.append({"functionCall": {"name": name, "args": args}})
    return parts


def _sign(m: JSON, parts: list[JSON], signatures: Signatures, sentinel: bool) -> None:
    """Put thought signatures back on replayed calls (see the module docstring)."""
    calls = [p for p in parts if "functionCall" in p]
    ids = [str(c.get("id") or "") for c in m.get("tool_calls") or ()]
    for part, call_id in zip(calls, ids, strict=False):
        if call_id in signatures:
            part["thoughtSignature"] = signatures[call_id]
    # Gemini signs only the first of parallel calls; an unsigned step fails on Gemini 3.
    if sentinel and calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def _arguments(raw: Any, where: str) -> JSON:
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    try:
        args = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise InvalidRequest("tool call arguments must be a JSON object encoded as a string",
                             param=where) from None
    if not isinstance(args, dict):
        raise InvalidRequest("tool call arguments must be a JSON object for Gemini models",
                             param=where)
    return args


def _tool_result(m: JSON, i: int, call_names: dict[str, str]) -> JSON:
    call_id = str(m.get("tool_call_id"))
    name = call_names.get(call_id) or m.get("name")
    if not name:
        raise InvalidRequest(
            f"tool message answers tool_call_id '{call_id}', which no earlier assistant "
            "message made; Gemini needs the function's name, so keep the assistant "
            "message with that tool call in 'messages'", param=f"messages[{i}].tool_call_id")
    return {"functionResponse": {"name": str(name), "response": tool_response(m.get("content"))}}


def tool_response(content: Any) -> JSON:
    """A tool result as the JSON object Gemini requires; anything else goes under 'content'."""
    text = content_text(content)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def generation_config(body: JSON) -> JSON:
    out: JSON = {}
    simple = (("temperature", "temperature"), ("top_p", "topP"), ("n", "candidateCount"),
              ("seed", "seed"), ("presence_penalty", "presencePenalty"),
              ("frequency_penalty", "frequencyPenalty"))
    for openai_name, gemini_name in simple:
        if body.get(openai_name) is not None:
            out[gemini_name] = body[openai_name]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        out["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        out["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = body.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        out["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if fmt["type"] == "json_schema" and schema is not None:
            out["responseJsonSchema"] = schema
    return out


def function_declarations(body: JSON) -> list[JSON]:
    fns: list[JSON] = []
    for i, tool in enumerate(body.get("tools") or ()):
        if tool.get("type", "function") != "function":
            raise InvalidRequest(f"tool type {tool.get('type')!r} is not supported for Gemini "
                                 "models; only 'function' tools are", param=f"tools[{i}].type")
        fns.append(tool["function"])
    for i, fn in enumerate(body.get("functions") or ()):
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest("each of 'functions' must be an object with a 'name'",
                                 param=f"functions[{i}]")
        fns.append(fn)
    out = []
    for fn in fns:
        decl: JSON = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        if fn.get("parameters"):
            decl["parametersJsonSchema"] = fn["parameters"]
        out.append(decl)
    return out


def tool_choice(choice: Any) -> JSON:
    """OpenAI ``tool_choice`` (or legacy ``function_call``) -> ``functionCallingConfig``."""
    if isinstance(choice, str) and choice in _TOOL_MODES:
        return {"mode": _TOOL_MODES[choice]}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if isinstance(name, str) and name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise InvalidRequest("'tool_choice' must be auto, none, required or "
                         "{'type': 'function', 'function': {'name': ...}} for Gemini models",
                         param="tool_choice")


# --- Gemini response -> OpenAI response ---------------------------------------------------


def finish_reason(reason: str | None, made_calls: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in FILTER_REASONS:
        return "content_filter"
    return "tool_calls" if made_calls else "stop"


def usage_from_gemini(meta: JSON | None) -> Usage:
    """``usageMetadata`` -> Usage. Output includes thinking tokens (the OpenAI convention);
    input includes tokens of tool-use prompts, which Gemini bills as input."""
    meta = meta or {}
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        input_tokens=int(meta.get("promptTokenCount") or 0)
        + int(meta.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def completion_id(data: JSON) -> str:
    rid = data.get("responseId")
    return f"chatcmpl-{rid}" if isinstance(rid, str) and rid else f"chatcmpl-{os.urandom(12).hex()}"


def tool_call_id(seed: str, candidate: int, position: int, name: str) -> str:
    """Gemini calls often carry no id: derive one that is the same for the same response."""
    digest = hashlib.sha256(f"{seed}:{candidate}:{position}:{name}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def candidate_output(cand: JSON, seed: str, index: int, first_call: int = 0,
                     signatures: Signatures | None = None) -> tuple[str, list[JSON]]:
    """The answer text (thoughts left out) and OpenAI tool calls of one candidate.
    Thought signatures of the calls are recorded in ``signatures``."""
    texts: list[str] = []
    calls: list[JSON] = []
    for part in (cand.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        fc = part.get("functionCall")
        if isinstance(fc, dict):
            name = str(fc.get("name") or "")
            position = first_call + len(calls)
            call_id = str(fc.get("id") or tool_call_id(seed, index, position, name))
            if signatures is not None and part.get("thoughtSignature"):
                signatures[call_id] = str(part["thoughtSignature"])
            calls.append({
                "id": call_id,
                "type": "function",
                "function": {"name": name,
                             "arguments": orjson.dumps(fc.get("args") or {}).decode()},
            })
    return "".join(texts), calls


def _blocked_choice(reason: str) -> JSON:
    return {"index": 0, "finish_reason": "content_filter", "logprobs": None, "message": {
        "role": "assistant", "content": None,
        "refusal": f"Gemini blocked the prompt (blockReason {reason})"}}


def to_openai_completion(data: JSON, model: str, provider: str,
                         signatures: Signatures | None = None) -> tuple[JSON, Usage]:
    """A ``GenerateContentResponse`` as an OpenAI ``chat.completion`` and its usage."""
    cid = completion_id(data)
    choices: list[JSON] = []
    for i, cand in enumerate(data.get("candidates") or ()):
        index = int(cand.get("index", i))
        text, calls = candidate_output(cand, cid, index, signatures=signatures)
        message: JSON = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": finish_reason(cand.get("finishReason"), bool(calls))
                        or "stop"})
    if not choices:
        block = (data.get("promptFeedback") or {}).get("blockReason")
        if not block:
            raise UpstreamError(f"provider '{provider}' returned no candidates and no "
                                "block reason", code="upstream_bad_response")
        choices.append(_blocked_choice(str(block)))
    usage = usage_from_gemini(data.get("usageMetadata"))
    return {"id": cid, "object": "chat.completion", "created": int(time.time()),
            "model": str(data.get("modelVersion") or model), "choices": choices,
            "usage": usage.to_openai()}, usage


class StreamTranslator:
    """Turns the events of ``streamGenerateContent?alt=sse`` into OpenAI chunks."""

    def __init__(self, model: str, signatures: Signatures | None = None) -> None:
        self.model = model
        self.signatures = signatures
        self.id: str | None = None
        self.created = int(time.time())
        self.usage: Usage | None = None
        self.blocked = False
        self._calls: dict[int, int] = {}  # candidate index -> tool calls sent so far
        self._finished: set[int] = set()

    @property
    def done(self) -> bool:
        """Whether the upstream finished properly (every candidate got a finish reason)."""
        return self.blocked or (bool(self._calls) and self._finished >= set(self._calls))

    def _chunk(self, choices: list[JSON]) -> JSON:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices}

    def translate(self, event: JSON) -> list[JSON]:
        if event.get("usageMetadata"):
            self.usage = usage_from_gemini(event["usageMetadata"])
        if event.get("modelVersion"):
            self.model = str(event["modelVersion"])
        if self.id is None:
            self.id = completion_id(event)
        candidates = event.get("candidates") or ()
        block = (event.get("promptFeedback") or {}).get("blockReason")
        if not candidates and block:
            self.blocked = True
            choice = _blocked_choice(str(block))
            msg = choice.pop("message")
            return [self._chunk([{**choice, "delta": {"role": "assistant",
                                                       "refusal": msg["refusal"]}}])]
        choices: list[JSON] = []
        for i, cand in enumerate(candidates):
            index = int(cand.get("index", i))
            started = index in self._calls
            sent = self._calls.get(index, 0)
            text, calls = candidate_output(cand, self.id, index, sent, self.signatures)
            finish = finish_reason(cand.get("finishReason"), bool(sent or calls))
            if not text and not calls and finish is None:
                continue  # e.g. a thought-only event: nothing to tell the client yet
            delta: JSON = {} if started else {"role": "assistant"}
            if text:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = [{"index": sent + k, **call} for k, call in enumerate(calls)]
            self._calls[index] = sent + len(calls)
            if finish:
                self._finished.add(index)
            choices.append({"index": index, "delta": delta, "logprobs": None,
                            "finish_reason": finish})
        return [self._chunk(choices)] if choices else []

    def usage_chunk(self) -> JSON | None:
        if self.usage is None:
            return None
        return {**self._chunk([]), "usage": self.usage.to_openai()}


# --- embeddings ---------------------------------------------------------------------------


def embed_texts(body: JSON) -> list[str]:
    inp = body.get("input")
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list) and all(isinstance(x, str) for x in inp):
        return list(inp)
    raise UnsupportedOperation("Gemini embedding models take text only; send 'input' as a "
                               "string or an array of strings, not token ids", param="input")


def to_gemini_embed_request(body: JSON, resource: str) -> JSON:
    dims = body.get("dimensions")
    requests = []
    for text in embed_texts(body):
        req: JSON = {"model": resource, "content": {"parts": [{"text": text}]}}
        if dims:
            req["outputDimensionality"] = dims
        requests.append(req)
    return {"requests": requests}


def to_openai_embeddings(data: JSON, body: JSON, provider: str) -> tuple[JSON, Usage]:
    embeddings = data.get("embeddings")
    if not isinstance(embeddings, list):
        raise UpstreamError(f"provider '{provider}' returned JSON without an 'embeddings' list",
                            code="upstream_bad_response")
    as_base64 = body.get("encoding_format") == "base64"
    items = []
    for i, emb in enumerate(embeddings):
        values = list((emb or {}).get("values") or ())
        vector: Any = values
        if as_base64:  # OpenAI's base64 form: little-endian float32
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        items.append({"object": "embedding", "index": i, "embedding": vector})
    reported = (data.get("usageMetadata") or {}).get("promptTokenCount")
    # batchEmbedContents usually reports no token counts; estimate them so the call is
    # still priced and budgeted (about four characters per token).
    tokens = int(reported) if reported else sum(estimate_text(t) for t in embed_texts(body))
    return {"object": "list", "data": items, "model": str(body["model"]),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, Usage(input_tokens=tokens)
