"""Alarms: a drift detector's verdict that an agent's behaviour moved, tied to the change behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Alarm"]


@dataclass(frozen=True, slots=True)
class Alarm:
    """A latched drift alarm on one signal of one agent.

    ``anchor_change_id`` is the change whose preceding calls formed the reference the alarm was
    measured against (``None`` when the reference was fitted by hand).
    """

    id: str
    agent: str
    signal: str
    score: float
    timestamp: float
    anchor_change_id: str | None = None
    calls_since_anchor: int = 0
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
