"""Using a registered prompt in a chat request: ``"prompt": "name@label"`` + ``variables``.

keel renders the version's messages (the client's own ``messages``, if any, follow them),
calls the model the version names (the client's ``model`` is used only when the version
names none), applies the version's params, tools and response format where the request
does not set them, and records the prompt name and version on the trace.
"""

from __future__ import annotations

from typing import Any

from keel.errors import InvalidRequest, NotFound
from keel.prompts.registry import PromptRegistry
from keel.types import JSON, Trace


def apply_prompt(registry: PromptRegistry, body: JSON, trace: Trace) -> None:
    ref = body.pop("prompt")
    variables: Any = body.pop("variables", None) or {}
    if not isinstance(ref, str) or not ref:
        raise InvalidRequest("'prompt' must be a string: name, name@version or name@label",
                             param="prompt")
    if not isinstance(variables, dict):
        raise InvalidRequest("'variables' must be an object of name -> value",
                             param="variables")
    try:
        version = registry.resolve(ref)
    except NotFound as exc:  # a bad reference is the request's fault: 400
        raise InvalidRequest(exc.message, param="prompt", code=exc.code) from None
    spec = version.spec
    extra = body.get("messages")
    if extra is not None and not isinstance(extra, list):
        raise InvalidRequest("'messages' must be an array", param="messages")
    body["messages"] = spec.render(variables, ref) + list(extra or [])
    if spec.model is not None:
        body["model"] = spec.model
    elif not isinstance(body.get("model"), str):
        raise InvalidRequest(f"prompt '{ref}' names no model; send 'model'", param="model")
    for key, value in spec.params.items():
        body.setdefault(key, value)
    if spec.tools is not None:
        body.setdefault("tools", list(spec.tools))
    if spec.response_format is not None:
        body.setdefault("response_format", spec.response_format)
    trace.prompt_name, trace.prompt_version = version.name, version.version
