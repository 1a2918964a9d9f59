"""Kept for compatibility: the scripted language model now lives in :mod:`driftwatch.demo.scripted`."""

from driftwatch.demo.scripted import (
    DETAIL_FACTOR,
    REFUSAL_TEXTS,
    Prompt,
    Reply,
    ScriptedModel,
    Tool,
    ToolCall,
    Traits,
    count_tokens,
    traits,
)

__all__ = ["DETAIL_FACTOR", "REFUSAL_TEXTS", "Prompt", "Reply", "ScriptedModel", "Tool", "ToolCall", "Traits",
           "count_tokens", "traits"]
