"""Observations: what a hook hands to the core about one agent call or one optimizer run.

Hooks (the decorator, the integrations, a user's own loop) build these plain records; the core
turns them into metrics, spans, ledger entries and drift signals. No framework types in here.
"""

from __future__ import annotations

from collections.abc import Mapping
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
_MAX_ITEMS = 1000  # list items joined into one text, at most


def output_text(result: Any, key: str | None = None) -> str | None:
    """The text of a call's result when it has an obvious one, else ``None``.

    - ``key`` (the agent's ``output_key`` option): the value under that key of a mapping, or that attribute of
      an object, read as below (a state key a graph keeps its answer in, a prediction field);
    - a ``str`` as is; a chat message (an object with ``content``: a string, or content blocks whose text
      parts are joined);
    - a mapping: a string under a common key (``output``, ``answer``, ``content``, ``text``, ``response``,
      ``result``), else the last message of its ``messages`` list (a LangGraph ``MessagesState``);
    - a list or tuple: its last message (a ``MessageGraph``'s state is the list of messages), else its
      strings joined with newlines when every item is one (a list-valued answer).
    """
    if key is not None:
        value = result.get(key) if isinstance(result, Mapping) else getattr(result, key, None)
        if value is not None:
            text = _text(value)
            if text is not None:
                return text
    return _text(result)


def _text(result: Any) -> str | None:
    if isinstance(result, str):
        return result
    if isinstance(result, Mapping):
        for key in _TEXT_KEYS:
            value = result.get(key)
            if isinstance(value, str):
                return value
        messages = result.get("messages")
        if isinstance(messages, list | tuple) and messages:
            return _message_text(messages[-1])
        return None
    if isinstance(result, list | tuple):
        if not result:
            return None
        text = _message_text(result[-1])
        if text is not None:
            return text
        if len(result) <= _MAX_ITEMS and all(isinstance(item, str) for item in result):
            return "\n".join(result)
        return None
    return _message_text(result)


def _message_text(message: Any) -> str | None:
    """The text of a chat message (an object with ``content``, or a ``{"content": ...}`` dict)."""
    content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: the text parts
        parts = [b if isinstance(b, str) else b.get("text") if isinstance(b, Mapping) else None for b in content]
        texts = [t for t in parts if isinstance(t, str)]
        return "".join(texts) if texts or not content else None
    return None


def output_size(result: Any, key: str | None = None) -> int | None:
    """Characters (or bytes) of a call's result, when it has a clear size; ``None`` otherwise."""
    if isinstance(result, bytes | bytearray):
        return len(result)
    text = output_text(result, key)
    return None if text is None else len(text)
