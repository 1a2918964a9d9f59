"""Observations: what a hook hands to the core about one agent call or one optimizer run.

Hooks (the decorator, the integrations, a user's own loop) build these plain records; the core
turns them into metrics, spans, ledger entries and drift signals. No framework types in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Call", "OptimizerRun", "output_size", "output_text"]


@dataclass(slots=True)
class Call:
    """One watched agent call, as seen by the hook that wrapped it.

    ``output_text`` is used in-process only (refusal and format checks); it is never stored,
    exported or logged. The derived signals ``refused``, ``format_ok``, ``score`` and ``embedding``
    are set once by the runtime (:func:`driftwatch.signals.derive`) before the call reaches any sink;
    ``None`` means unknown.
    """

    agent: str
    duration_s: float
    error: bool = False
    error_type: str | None = None
    output_chars: int | None = None
    output_text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tools: tuple[str, ...] = ()
    trace_id: str | None = None
    span_id: str | None = None
    timestamp: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)
    # -- derived signals (driftwatch.signals) --
    refused: bool | None = None
    format_ok: bool | None = None
    score: float | None = None
    embedding: Any = None

    @property
    def status(self) -> str:
        return "error" if self.error else "ok"


@dataclass(slots=True)
class OptimizerRun:
    """One optimizer (compile) run: who ran, how it ended, what it tried."""

    id: str
    agent: str
    optimizer: str
    outcome: str = "running"  # "running" | "ok" | "failed"
    started_at: float = 0.0
    ended_at: float | None = None
    candidates: int = 0
    best_score: float | None = None
    trace_id: str | None = None
    error_type: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


_TEXT_KEYS = ("output", "answer", "content", "text", "response", "result")


def output_text(result: Any) -> str | None:
    """The text of a call's result when it has an obvious one, else ``None``.

    ``str`` as is; an object with a string ``content`` attribute (chat messages); a mapping with a
    string under a common key, or whose ``messages`` list ends with such a message.
    """
    if isinstance(result, str):
        return result
    content = getattr(result, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(result, dict):
        for key in _TEXT_KEYS:
            value = result.get(key)
            if isinstance(value, str):
                return value
        messages = result.get("messages")
        if isinstance(messages, list) and messages:
            last = messages[-1]
            text = getattr(last, "content", None)
            if text is None and isinstance(last, dict):
                text = last.get("content")
            if isinstance(text, str):
                return text
    return None


def output_size(result: Any) -> int | None:
    """Characters (or bytes) of a call's result, when it has a clear size; ``None`` otherwise."""
    if isinstance(result, bytes | bytearray):
        return len(result)
    text = output_text(result)
    return None if text is None else len(text)
