"""Prompt registry: immutable versions, movable labels, rendering at the gateway."""

from keel.prompts.apply import apply_prompt
from keel.prompts.registry import PromptRegistry, PromptVersion, split_ref
from keel.prompts.spec import PromptSpec, PromptSpecError

__all__ = ["PromptRegistry", "PromptSpec", "PromptSpecError", "PromptVersion", "apply_prompt",
           "split_ref"]
