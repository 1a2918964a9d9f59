"""Redaction: what is masked in prompt text before it leaves the process (content capture only)."""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["default_redact", "resolve"]

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    (re.compile(r"\b(?:sk|pk|rk|ghp|gho|xox[abpr])[-_][A-Za-z0-9_-]{12,}\b"), "[secret]"),
    (re.compile(r"(?i)\b(bearer|token|api[_-]?key|password|secret)(\s*[:=]\s*|\s+)\S+"), r"\1\2[secret]"),
    (re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), "[number]"),
)


def default_redact(text: str) -> str:
    """Mask e-mail addresses, API keys and tokens, and long digit runs (card / account numbers)."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def resolve(redact: Callable[[str], str] | None) -> Callable[[str], str]:
    """The redaction function in force: the user's, else :func:`default_redact`."""
    return redact if redact is not None else default_redact
